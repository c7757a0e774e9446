"""The live medium (live/build.py) booted as a machine boots it: QEMU (TCG) with OVMF, from the ISO.

* interactive: the ISO as a USB stick, no answers: GRUB's menu, the installer's first screen on tty1 (read from
  /dev/vcsu1 in the guest, every character of it in the console font), keys from QEMU's monitor to the disk
  screen, which lists the blank disk and shows the medium refused; quitting leaves a shell on tty1 and tty2.
* unattended: the ISO as a CD, a blank 16 GiB disk and a small disk labelled PHYLLOME-ANS with the answer file;
  the menu's "unattended" entry installs (F2FS root, encrypted VM store, the payload from the medium) and powers
  off; then the installed disk boots by itself (tests/boot: unlock, first boot, login) on F2FS.

Each stage is named; a stage that does not come fails with the end of the serial console (and tty1's text).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.boot.harness import GUEST_KERNEL_ARGS, StageFailed, UefiMachine
from tests.iso.harness import LiveMachine

pytestmark = [pytest.mark.iso, pytest.mark.root]

WELCOME = r"Welcome to the Phyllome OS installer"


def blank_disk(path: Path, size: int = 16 << 30) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def console_font(medium) -> bytes:
    """The medium's console font (vconsole.conf's FONT=), read from its squashfs."""
    squashfs = medium.pxe / "squashfs.img"
    conf = subprocess.run(["unsquashfs", "-cat", str(squashfs), "etc/vconsole.conf"], capture_output=True,
                          text=True, check=True).stdout
    name = re.search(r"^FONT=(\S+)", conf, re.M).group(1)
    return subprocess.run(["unsquashfs", "-cat", str(squashfs), f"usr/share/consolefonts/{name}.psf.gz"],
                          capture_output=True, check=True).stdout


def glyph_table(psf: bytes) -> dict[bytes, str]:
    """Glyph bitmap -> the character it draws (ASCII first), to read screendumps."""
    import gzip

    from live import font

    _, glyphs, codes = font.read_psf1(gzip.decompress(psf))
    table: dict[bytes, str] = {}
    for bitmap, chars in zip(glyphs, codes, strict=True):
        if chars and (bitmap not in table or min(chars) < 128 <= ord(table[bitmap])):
            table[bitmap] = chr(min(chars))
    return table


def test_the_installer_starts_on_tty1_and_refuses_the_medium(medium, workdir):
    target = blank_disk(workdir / "blank.img")
    machine = LiveMachine(target, workdir / "vm", medium.iso, usb=True)
    try:
        with machine:
            from live import font

            psf = console_font(medium)
            glyphs = glyph_table(psf)
            machine.boot_entry("Install Phyllome OS")
            machine.wait_text(glyphs, WELCOME, 1500, "the installer's first screen on tty1 (screendump)")
            first_screen = machine.stages[-1][1]
            machine.screendump(workdir / "welcome.png")
            # A kernel message of a slow or busy machine (an RCU stall drew over this screen on CI) stays in the
            # kernel's log and off the installer's console.
            kernel = machine.shell("echo '<2>phyllome-kmsg-probe: a critical line' >/dev/kmsg; "
                                   "dmesg | grep -c phyllome-kmsg-probe; for k in de fr de-latin1-nodeadkeys us; "
                                   "do loadkeys -q $k && echo LOADED-$k; done", "a kernel message while the "
                                   "installer owns tty1; the keymaps the Welcome screen offers load")
            assert kernel.split() == ["1", "LOADED-de", "LOADED-fr", "LOADED-de-latin1-nodeadkeys", "LOADED-us"], \
                kernel
            lines = machine.read_console(1, "tty1's text (/dev/vcsu1)")
            screen = "\n".join(lines)
            print(screen)
            assert re.search(WELCOME, screen), screen  # the screendump was read with the font's own glyphs
            assert "phyllome-kmsg-probe" not in screen, screen
            missing = {c for c in screen if not c.isspace()} - font.covered(psf)
            assert not missing, f"characters on tty1 that the console font cannot draw: {sorted(missing)}"
            # The keys of a person at the console: Tab to "Next: choose the disk", Enter.
            machine.sendkey("tab", "ret")
            machine.wait_text(glyphs, r"Use the arrows and Enter", 600, "keys -> the disk screen")
            screen = "\n".join(machine.read_console(1, "the disk screen's text"))
            print(screen)
            assert re.search(r"vda .*16\.0 GiB.*empty", screen), screen
            assert re.search(r"sda .*NOT USABLE: holds the running", screen), screen
            machine.sendkey("up")  # the medium (sda, listed first): refused, Next disabled
            machine.wait_text(glyphs, r"/dev/sda cannot be used: holds the running system", 300,
                              "the medium refused")
            machine.screendump(workdir / "disk.png")
            # Quitting leaves a usable console: tty1's shell says how to start the installer again.
            machine.sendkey("ctrl-q")
            time.sleep(3)
            machine.sendkey("y")
            machine.wait_text(glyphs, r"Start the installer again: phyllome-install", 300, "quit -> tty1's shell")
            machine.send_line("")
            machine.shell("systemctl poweroff", "power off")
            machine.wait_exit(300, "powered off")
    finally:
        print("stages:", machine.timings())
    print(f"power-on to the installer's first screen: {first_screen:.0f} s")


ANSWERS = """version = 1
[storage]
disk = "/dev/vda"
wipe = "/dev/vda"
root_fs = "f2fs"
[storage.encryption]
passphrase = "{passphrase}"
[payload]
kind = "local"
repo = "/run/install/repo"
ref = "phyllome/x86_64/host"
[host]
hostname = "phyllome-iso"
kernel_args = """ + GUEST_KERNEL_ARGS + """
[[users]]
name = "admin"
password = "{password}"
[firstboot]
unattended = true
[post]
action = "poweroff"
"""


def answers_disk(path: Path, text: str) -> Path:
    """A small ext4 disk labelled PHYLLOME-ANS holding /answers.toml (mkfs.ext4 -d: no loop device)."""
    tree = path.parent / "answers-tree"
    tree.mkdir()
    (tree / "answers.toml").write_text(text)
    (tree / "answers.toml").chmod(0o600)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "PHYLLOME-ANS", "-d", str(tree), str(path), "16M"],
                   capture_output=True, check=True)
    return path


def test_unattended_install_from_the_medium_then_the_installed_disk_boots(medium, workdir):
    """The whole chain from the medium: this proves what the VM tier's F2FS install proved (F2FS root with its
    features, ostree deployment, the encrypted VM store) and more, on the live root instead of this machine's."""
    from tests.boot.test_installed_disk import PASSPHRASE, PASSWORD, login, unlock

    target = blank_disk(workdir / "target.img")
    answers = answers_disk(workdir / "answers.img", ANSWERS.format(passphrase=PASSPHRASE, password=PASSWORD))
    machine = LiveMachine(target, workdir / "live", medium.iso, usb=False, disks=(answers,))
    try:
        with machine:
            machine.boot_entry("Install Phyllome OS unattended", down=1)
            try:
                rc = machine.wait_exit(3600, "unattended install from the medium -> power off")
                assert rc == 0, f"QEMU ended with {rc}, not by the guest's power off\n{machine.console[-3000:]}"
            except StageFailed:
                tty1 = "\n".join(machine.read_console(1, "tty1 after the timeout"))
                raise StageFailed("unattended install", f"no power off; tty1 shows:\n{tty1}", machine.console) \
                    from None
    finally:
        print("live stages:", machine.timings())
    with UefiMachine(target, workdir / "installed", memory_mib=2048) as booted:
        try:
            booted.expect(r"Linux version 6\.", 300, "firmware -> GRUB -> kernel")
            booted.expect(r"OSTree Prepare OS", 300, "initramfs -> ostree-prepare-root")
            unlock(booted)
            login(booted)
            booted.send_line("echo ROOTFS=$(findmnt -n -o FSTYPE /sysroot) HOST=$(hostname) "
                             "ORIGIN=$(grep -h refspec /ostree/deploy/phyllome/deploy/*.origin)")
            found = booted.expect(r"ROOTFS=(\w+) HOST=(\S+) ORIGIN=(\S+)", 60, "F2FS root, the medium's payload")
        finally:
            print("installed disk stages:", booted.timings())
    assert found.group(1) == "f2fs" and found.group(2) == "phyllome-iso", found.group(0)
    assert found.group(3).endswith("phyllome/x86_64/host"), found.group(0)


def test_the_media_check_passes_the_medium_and_fails_a_damaged_copy(medium, workdir):
    """What "Test this medium and install" runs in the initramfs (rd.live.check: dracut's dmsquash-live runs
    checkisomd5 on the medium), run here on the ISO and on a copy with one byte of its squashfs changed."""
    ok = subprocess.run(["checkisomd5", "--verbose", str(medium.iso)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    damaged = workdir / "damaged.iso"
    subprocess.run(["cp", "--sparse=always", str(medium.iso), str(damaged)], check=True)
    listing = subprocess.run(["xorriso", "-indev", str(damaged), "-find", "/LiveOS/squashfs.img", "-exec",
                              "report_lba", "--"], capture_output=True, text=True, check=True).stdout
    lba = int(re.search(r"File data lba:\s+\d+\s*,\s*(\d+)", listing).group(1))
    with open(damaged, "r+b") as handle:
        handle.seek(lba * 2048 + 4096)
        byte = handle.read(1)
        handle.seek(lba * 2048 + 4096)
        handle.write(bytes([byte[0] ^ 0xFF]))
    bad = subprocess.run(["checkisomd5", "--verbose", str(damaged)], capture_output=True, text=True, check=False)
    assert bad.returncode != 0, bad.stdout + bad.stderr
    assert "FAIL" in (bad.stdout + bad.stderr).upper(), bad.stdout + bad.stderr


BROKEN = """version = 1
[storage]
disk = "/dev/vda"
wipe = "/dev/vda"
root_fs = "btrfs"
[storage.encryption]
passphrase = "{passphrase}"
[host]
hostname = "no spaces allowed"
"""


def test_a_legacy_bios_pc_on_the_serial_console_refuses_a_broken_answer_file_and_goes_on(medium, workdir):
    """The hybrid medium on a PC without UEFI (SeaBIOS, from a CD), its menu's serial entry, and a broken answer
    file on a PHYLLOME-ANS partition: the installer on ttyS0 names each problem by line, uses nothing of the file
    (the disk stays blank), and goes on interactively."""
    secret = "serial canary 5e1a-93"
    target = blank_disk(workdir / "blank.img", 4 << 30)
    answers = answers_disk(workdir / "answers.img", BROKEN.format(passphrase=secret))
    machine = LiveMachine(target, workdir / "bios", medium.iso, usb=False, disks=(answers,), bios=True)
    try:
        with machine:
            machine.boot_entry("Install Phyllome OS on the serial console", down=2)
            machine.expect(r"The answer file has problems: it is not used", 1500, "the installer on ttyS0")
            machine.expect(r":5:1: storage\.root_fs: must be one of", 60, "the problem named by its line")
            machine.expect(r"Go on interactively", 60, "the way on")
            machine.send_line("")  # Enter on the focused button
            machine.expect(r"Welcome to the Phyllome OS installer", 300, "-> the interactive installer")
    finally:
        print("stages:", machine.timings())
    assert secret not in machine.console
    with open(target, "rb") as disk:
        assert disk.read(1 << 20) == bytes(1 << 20), "the target's first MiB was written"


def test_the_rescue_entry_gives_a_root_shell_and_no_installer(medium, workdir):
    """The menu's "Rescue shell": rescue.target, a root shell on the console without a password (root's is
    locked on the medium), and no installer started. The shell is on tty1 only: a line typed on its keyboard
    (again, until the shell is there to read it) writes its answer to the serial port."""
    target = blank_disk(workdir / "blank.img", 4 << 30)
    machine = LiveMachine(target, workdir / "rescue", medium.iso, usb=True)
    try:
        with machine:
            machine.boot_entry("Rescue shell (no installer)", down=4)
            line = ("echo RESCUE-$((40+2)) $(id -u) $(systemctl is-active phyllome-installer) "
                    "$(systemctl is-active rescue.target) >/dev/ttyS0\n")
            deadline = time.monotonic() + 900
            while True:
                machine.type_text(line)
                try:
                    found = machine.expect(r"RESCUE-42 (\d+) (\w+) (\w+)", 30, "a line typed in the shell")
                    break
                except StageFailed:
                    if time.monotonic() > deadline or machine.process.poll() is not None:
                        raise
                    machine.sendkey("ctrl-u")  # a half-read line (the shell was not there yet) is dropped
            assert found.groups() == ("0", "inactive", "active"), found.group(0)
    finally:
        print("stages:", machine.timings())
