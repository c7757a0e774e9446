"""The real chain: the payload built by payload/build.py, installed by the real command
(`phyllome-install install --answers FILE --target-image disk.img`; ext4 root: this machine's kernel has no F2FS),
then the disk booted by itself under OVMF: firmware -> GRUB -> kernel -> initramfs (dracut, ostree-prepare-root)
-> systemd -> the VM store's unlock prompt -> the unattended first boot -> login on the serial console; then an
upgrade from the host's remote, a reboot into the new deployment, a rollback and a reboot into the old one, each
proven from inside the guest (`/proc/cmdline`'s ostree= and the deployment it points at).

Each stage is named; a stage that does not come shows the end of the serial console. The F2FS root (the real one)
is installed from the live medium and booted by the iso tier (tests/iso), which replaced the F2FS install made in
the VM tier's guest.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.boot.harness import GUEST_KERNEL_ARGS, OVMF_CODE, StageFailed, UefiMachine

pytestmark = [
    pytest.mark.boot,
    pytest.mark.root,
    pytest.mark.skipif(not (shutil.which("qemu-system-x86_64") and shutil.which("mmdebstrap") and OVMF_CODE.exists()),
                       reason="needs qemu-system-x86, ovmf and mmdebstrap (make setup)"),
]

PASSWORD = "boot test password"
PASSPHRASE = "boot test passphrase"
ANSWERS = """version = 1
[storage]
disk = "{disk}"
wipe = "{disk}"
root_fs = "{root_fs}"
[storage.encryption]
passphrase = "boot test passphrase"
[payload]
kind = "local"
repo = "{repo}"
ref = "{ref}"
{upgrade}
[host]
hostname = "phyllome-boot"
kernel_args = """ + GUEST_KERNEL_ARGS + """
[[users]]
name = "admin"
password = "{password}"
[firstboot]
unattended = true
{tpm}
[post]
action = "none"
"""
PRIMARY_VM = """[firstboot.vm]
name = "desktop"
os = "alpinelinux3.17"
memory = "256MiB"
vcpus = 1
disk_size = "1GiB"
gpu = "virtio-gpu-2d"
tpm = false
start = false"""
"""The primary VM the unattended first boot defines (autostart on, not started then): the smallest guest osinfo
allows, so that a guest emulated inside the emulated host stays light. The next boot's libvirtd starts it once the
TPM unlocked its store."""
GUEST_HOST = "10.0.2.2"
"""This machine as QEMU's user network shows it to the guest (its 127.0.0.1)."""
WHERE = ("o=$(sed -n 's/.* ostree=\\([^ ]*\\).*/\\1/p' /proc/cmdline); "
         "echo BOOTED=$o DEPLOY=$(basename $(readlink -f /sysroot$o)) VERSION=$(cat /usr/lib/phyllome/payload-version)")
"""Which deployment booted: the kernel's ostree= argument, the deployment it points at, the payload's version."""


ROLLBACK = "; ".join([
    "import gi", "gi.require_version('OSTree', '1.0')", "from gi.repository import OSTree",
    # /sysroot is read-only on a booted host (sysroot.readonly): in a private mount namespace the lock remounts it
    # writable; then load, the order the ostree command uses.
    "sysroot = OSTree.Sysroot.new_default()", "sysroot.initialize_with_mount_namespace(None)",
    "sysroot.lock()", "sysroot.load(None)",
    "deployments = sysroot.get_deployments()",
    "assert len(deployments) == 2 and deployments[0].equal(sysroot.get_booted_deployment())",
    "sysroot.write_deployments([deployments[1], deployments[0]], None)",
    "print('default:', deployments[1].get_csum())"])
"""The previous deployment made the default, both kept: what `rpm-ostree rollback` does, through libostree
(its Python bindings are in the payload)."""


def as_root(command: str) -> str:
    """A shell line that runs `command` as root through the admin's sudo (group wheel) and echoes its exit code."""
    return f"echo {shlex.quote(PASSWORD)} | sudo -S -p '' sh -c {shlex.quote(command)}; echo RC=$?"


def booted(machine, stage: str) -> re.Match:
    machine.send_line(WHERE)
    return machine.expect(r"BOOTED=(/ostree/\S+) DEPLOY=([0-9a-f]{64})\.\d+ VERSION=(\d+)", 60, stage)


def unlock(machine) -> None:
    """The VM store's prompt (systemd-ask-password on the console, before logins are permitted), answered."""
    machine.expect(r"Passphrase or recovery code for the VM store", 600, "systemd -> the unlock prompt")
    machine.type_secret(PASSPHRASE, 150, "passphrase typed")
    machine.expect(r"VM store \S+ is unlocked", 900, "unlock (key derivation)")


def skip_unlock(machine) -> None:
    """Later boots: an empty answer skips it (the VMs stay unavailable; the boot goes on). Not Ctrl+D: the
    console agent takes that as "not me" and asks again."""
    machine.expect(r"Passphrase or recovery code for the VM store", 600, "systemd -> the unlock prompt")
    machine.answer(r"Skipped\.", "\x15", 100, "unlock skipped")  # Ctrl+U (an empty line), then Enter


def login(machine) -> None:
    """The unattended first boot (the marker removed, its result saved), then the admin's shell."""
    try:
        machine.expect(r"login: ", 900, "unattended first boot -> login prompt")
    except StageFailed as exc:  # the first boot writes to tty1 only: its log, from the disk, says where it is
        try:
            log = machine.root_file("/ostree/deploy/phyllome/var/log/phyllome/firstboot-run.log")
        except Exception as error:  # the stage's failure is the report: a log that cannot be read never hides it
            log = f"(not read: {type(error).__name__}: {error})"
        raise StageFailed(exc.stage, f"{exc.why}\n--- the first boot's log, from the disk ---\n"
                                     f"{log}", exc.console) from None
    machine.answer(r"Password: ", "admin", 100, "password prompt")
    machine.send_line(PASSWORD)
    machine.expect(r"\$ ", 120, "shell")
    machine.send_line("echo MARKER=$(test -e /etc/phyllome/firstboot && echo kept || echo removed) "
                      "RESULT=$(test -s /var/lib/phyllome/firstboot.json && echo saved || echo none)")
    found = machine.expect(r"MARKER=(\w+) RESULT=(\w+)", 60, "first boot done")
    if not (found.group(1) == "removed" and found.group(2) == "saved"):  # what the first boot said, to the report
        machine.send_line(as_root("journalctl -b -o cat -u phyllome-firstboot -u phyllome-unlock --no-pager | "
                                  "tail -60; ls -la /var/lib/phyllome; for f in /var/log/phyllome/*.log; do case $f in "
                                  "*/install.log) ;; *) tail -n 40 $f ;; esac; done; echo JOURNAL-$((40+2))-END"))
        journal = machine.expect(r"([\s\S]*)JOURNAL-42-END", 120, "the first boot's journal")
        raise AssertionError(f"{found.group(0)}\n--- the first boot's journal ---\n{journal.group(1)[-8000:]}")


def reboot(machine, stage: str) -> None:
    """The primary VM is stopped first: the test's guest has no OS to answer libvirt-guests' shutdown request
    (it would wait its 300 s), and a rolled-back deployment's /etc still autostarts it."""
    machine.send_line(as_root("virsh -q destroy desktop >/dev/null 2>&1; systemctl reboot"))
    machine.wait_exit(300, stage)  # -no-reboot: QEMU ends where the machine would restart


def tpm_unlocked(machine) -> None:
    """No prompt: the TPM released the key (Secure Boot's state is the one it was sealed to)."""
    found = machine.expect(r"VM store \S+ is unlocked by the TPM|Passphrase or recovery code for the VM store", 600,
                           "systemd -> the TPM unlocks the VM store")
    assert "by the TPM" in found.group(0), machine.console[-3000:]


@contextlib.contextmanager
def boot_again(image: Path, workdir: Path, stages: list, stage: str) -> Iterator[tuple[UefiMachine, re.Match]]:
    """A later boot of the installed disk under Secure Boot with its TPM: unlocked by the TPM without a prompt,
    the admin logged in, which deployment booted."""
    with UefiMachine(image, workdir / "vm", memory_mib=2048, net=True, secure_boot=True,
                     tpm_state=workdir / "tpm") as machine:
        stages.append(machine)
        tpm_unlocked(machine)
        login(machine)
        yield machine, booted(machine, stage)


@contextlib.contextmanager
def upgrade_server(repo: Path, ref: str, commit: str, served: Path) -> Iterator[int]:
    """The payload's archive repository over HTTP on 127.0.0.1 with `ref` moved to `commit` (the second version):
    its objects are the payload's (a link), its refs its own. Yields the port."""
    served.mkdir(parents=True)
    shutil.copy(repo / "config", served / "config")
    (served / "objects").symlink_to(repo / "objects")
    head = served / "refs" / "heads" / ref
    head.parent.mkdir(parents=True)
    head.write_text(commit + "\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def install_image(image: Path, workdir: Path, answers: str) -> str:
    """The real command: `phyllome-install install --answers FILE --target-image IMAGE --image-size 12GiB`.
    Returns the recovery code it showed."""
    answers_file = workdir / "answers.toml"
    answers_file.write_text(answers)
    run = subprocess.run([sys.executable, "-m", "phyllome_installer.cli", "install", "--answers", str(answers_file),
                          "--target-image", str(image), "--image-size", "12GiB", "--log", str(workdir / "install.log")],
                         capture_output=True, text=True, check=False, timeout=1800)
    assert run.returncode == 0, f"{run.stderr[-3000:]}\n{(workdir / 'install.log').read_text()[-3000:]}"
    found = re.search(r"Recovery code for \S+: (\S+)", run.stdout)
    return found.group(1) if found else ""


def read_from_disk(image: Path, workdir: Path) -> tuple[dict, str]:
    """After the machine is off: the first boot's saved result (the stateroot's /var) and the boot menu that ostree
    wrote last, read from the disk itself (read-only loop device; ext4 is mountable here)."""
    import json

    from phyllome_installer.core.runner import SubprocessRunner
    from phyllome_installer.sandbox import detach

    device = subprocess.run(["losetup", "--find", "--show", "--read-only", "--partscan", str(image)],
                            capture_output=True, text=True, check=True).stdout.strip()
    try:
        subprocess.run(["partx", "-a", device], capture_output=True, check=False)  # when --partscan raced udev
        found = {}
        for number, rel in ((3, "ostree/deploy/phyllome/var/lib/phyllome/firstboot.json"), (2, "loader/grub.cfg")):
            where = workdir / f"p{number}"
            where.mkdir(exist_ok=True)
            subprocess.run(["mount", "-o", "ro,noload", f"{device}p{number}", str(where)], check=True)
            try:
                found[number] = (where / rel).read_text()
            finally:
                subprocess.run(["umount", str(where)], check=False)
        return json.loads(found[3]), found[2]
    finally:
        detach(SubprocessRunner(), device)


@pytest.fixture
def workdir():
    path = Path("/var/tmp") / f"phyllome-boot-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_installed_disk_boots_upgrades_and_rolls_back(workdir):
    from payload import build as payload_build

    payload = payload_build.build()
    print(payload.describe())
    second = payload_build.next_version(payload)
    image = workdir / "disk.img"
    with upgrade_server(payload.repo, payload_build.REF, second, workdir / "served") as port:
        upgrade = f'upgrade_url = "http://{GUEST_HOST}:{port}"\ngpg_verify = false'
        recovery = install_image(image, workdir, ANSWERS.format(
            disk="/dev/vda", root_fs="ext4", repo=payload.repo, ref=payload_build.REF, upgrade=upgrade,
            password=PASSWORD, tpm=f"tpm_unlock = true\n{PRIMARY_VM}"))
        assert recovery.count("-") == 7
        stages = []
        try:
            # Secure Boot enforced, Microsoft's keys enrolled: shim -> signed GRUB -> signed kernel (the same firmware
            # refuses an unsigned GRUB: tests/boot/test_smoke.py).
            with UefiMachine(image, workdir / "vm", memory_mib=2048, net=True, secure_boot=True,
                             tpm_state=workdir / "tpm") as machine:
                stages.append(machine)
                machine.expect(r"Linux version 6\.", 300, "firmware -> shim -> signed GRUB -> kernel")
                machine.expect(r"dracut-|Initramfs", 300, "kernel -> initramfs")
                machine.expect(r"ostree-prepare-root|OSTree", 300, "initramfs -> ostree-prepare-root")
                machine.expect(r"Welcome to Debian GNU/Linux 12 \(bookworm\)!", 300, "switch root -> systemd")
                # The first real boot: the passphrase unlocks, then seals a key to the TPM (PCR 7: Secure Boot on,
                # Microsoft's keys); the enrolment is said before the unlock's last line.
                machine.expect(r"Passphrase or recovery code for the VM store", 600, "systemd -> the unlock prompt")
                machine.type_secret(PASSPHRASE, 150, "passphrase typed")
                machine.expect(r"The TPM will unlock the VM store at the next boots", 900, "unlock -> TPM enrolled")
                machine.expect(r"VM store \S+ is unlocked", 120, "unlocked")
                login(machine)
                first = booted(machine, "first deployment booted")
                assert first.group(3) == "1" and first.group(2).startswith(payload.commit), first.group(0)
                # The console as vconsole.conf says (loadkeys and setfont ran: the unlock prompt reads the chosen
                # layout, the first boot's borders have their glyphs), and the keymaps of other layouts are there.
                machine.send_line(as_root("systemctl is-failed systemd-vconsole-setup; loadkeys -q de && "
                                          "loadkeys -q us && echo KEYMAPS=ok"))
                found = machine.expect(r"(\w+)\s+KEYMAPS=(\w+)", 60, "the console's keymap and font set up")
                assert found.group(1) != "failed" and found.group(2) == "ok", machine.console[-2000:]
                machine.send_line("mokutil --sb-state; echo SB-STATE-DONE")
                state = machine.expect(r"SecureBoot (\w+)[\s\S]*SB-STATE-DONE", 60, "Secure Boot state from inside")
                assert state.group(1) == "enabled", state.group(0)
                # The menu this boot came from is the payload's grub-mkconfig's (its 15_ostree section, one entry),
                # as every later one is. Then the upgrade from the host's remote (the network may still be coming
                # up: a few tries).
                machine.send_line(as_root("m=/boot/loader/grub.cfg; first=$(grep -c "
                                          "'^### BEGIN /etc/grub.d/15_ostree ###' $m)/$(grep -c ostree= $m); "
                                          "ok=no; for i in 1 2 3 4 5 6; do ostree admin upgrade && { ok=yes; break; }; "
                                          "sleep 10; done; ostree admin status; "
                                          "echo FIRST=$first UPGRADE=$ok MENU=$(grep -c ostree= $m)"))
                found = machine.expect(r"FIRST=(\S+) UPGRADE=(\w+) MENU=(\d+)", 900, "ostree admin upgrade")
                assert found.group(1) == "1/1", machine.console[-3000:]
                # Both deployments in the menu that ostree wrote (grub-mkconfig with 15_ostree).
                assert found.group(2) == "yes" and found.group(3) == "2", machine.console[-3000:]
                reboot(machine, "reboot after the upgrade")
            with boot_again(image, workdir, stages, "new deployment booted") as (machine, new):
                assert new.group(3) == "2" and new.group(2).startswith(second), new.group(0)
                # No passphrase typed, and libvirt autostarted the primary VM from the unlocked store. Then it is
                # stopped and its autostart turned off: the later boots need the emulated host's CPU.
                # Its QEMU is looked for before anything connects to libvirt (a connection would start the daemon).
                machine.send_line(as_root("for i in $(seq 30); do pgrep -f 'qemu-system.*guest=desktop' >/dev/null "
                                          "&& break; sleep 5; done; echo VMS=$(virsh -q list --all --name | "
                                          "tr '\\n' ,) RUNNING=$(virsh domstate desktop); "
                                          "virsh destroy desktop; virsh autostart --disable desktop"))
                found = machine.expect(r"VMS=(\S*) RUNNING=(\w*)", 300, "the primary VM autostarted")
                assert found.group(1) == "desktop," and found.group(2) == "running", machine.console[-3000:]
                # The rollback, as rpm-ostree rollback does it: both deployments kept, the previous one made the
                # default (libostree's write_deployments; plain ostree 2022.7 has no rollback command).
                machine.send_line(as_root(f"python3 -c {shlex.quote(ROLLBACK)} && ostree admin status"))
                found = machine.expect(r"RC=(\d+)", 600, "rollback (the previous deployment made the default)")
                assert found.group(1) == "0", machine.console[-3000:]
                reboot(machine, "reboot after the rollback")
            with boot_again(image, workdir, stages, "old deployment booted again") as (machine, old):
                assert old.group(3) == "1" and old.group(2) == first.group(2), old.group(0)
                reboot(machine, "shut down")
            # The same machine and TPM with Secure Boot gone (firmware without it): PCR 7 changed, the TPM
            # refuses, the reason is said and the prompt follows; the recovery code still unlocks.
            with UefiMachine(image, workdir / "vm-no-sb", memory_mib=2048, net=True,
                             tpm_state=workdir / "tpm") as machine:
                stages.append(machine)
                machine.expect(r"the TPM did not release the VM store's key", 600, "the TPM refuses, said why")
                machine.expect(r"Passphrase or recovery code for the VM store", 300, "-> the unlock prompt")
                machine.type_secret(recovery, 150, "recovery code typed")
                machine.expect(r"VM store \S+ is unlocked", 900, "unlock with the recovery code")
                login(machine)
                reboot(machine, "shut down")
        finally:
            for number, machine in enumerate(stages, 1):
                print(f"boot {number} stages:", machine.timings())
    # No secret in clear on the disk (the raw key is in the sealed credential only) nor on the console.
    for secret in (PASSPHRASE, recovery):
        assert subprocess.run(["grep", "-c", "-a", "-F", secret, str(image)], capture_output=True,
                              check=False).returncode == 1, f"{secret[:4]}... is on the disk in clear"
        for number, machine in enumerate(stages, 1):
            at = machine.console.find(secret)
            assert at < 0, (f"{secret[:4]}... on boot {number}'s console: "
                            f"{machine.console[max(0, at - 300):at + len(secret) + 100].replace(secret, '<SECRET>')!r}")
    # From the disk itself: the first boot's result, and the menu ostree wrote at the rollback (old one first).
    result, menu = read_from_disk(image, workdir)
    assert result["ok"] is True, result
    # Written by 15_ostree: one entry per deployment, the default first; only the first version's commit carries a
    # "1.<key>" version, which its title shows.
    titles = re.findall(r"menuentry '([^']*\(ostree:\d\))'", menu)
    assert len(titles) == 2 and ") 1." in titles[0] and ") 1." not in titles[1], menu
