"""The real chain, first attempt: the payload built by payload/build.py, installed by the installer's own engine onto
a loop disk (ext4 root: this machine's kernel has no F2FS), then the disk booted by itself under OVMF:
firmware -> GRUB -> kernel -> initramfs (dracut, ostree-prepare-root) -> systemd -> login on the serial console.

Each stage is named; a stage that does not come shows the end of the serial console. The installer is driven through
its Python API (plan.build + engine.run, as tests/install does) because `phyllome-install install` cannot yet target
a loop device or an image file (issue 13: `--target-image`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.boot.harness import OVMF_CODE, UefiMachine

pytestmark = [
    pytest.mark.boot,
    pytest.mark.root,
    pytest.mark.skipif(not (shutil.which("qemu-system-x86_64") and shutil.which("mmdebstrap") and OVMF_CODE.exists()),
                       reason="needs qemu-system-x86, ovmf and mmdebstrap (make setup)"),
]

PASSWORD = "boot test password"
ANSWERS = """version = 1
[storage]
disk = "{disk}"
wipe = "{disk}"
root_fs = "ext4"
[storage.encryption]
passphrase = "boot test passphrase"
[payload]
kind = "local"
repo = "{repo}"
ref = "{ref}"
[host]
hostname = "phyllome-boot"
kernel_args = ["console=ttyS0,115200"]
[[users]]
name = "admin"
password = "{password}"
[firstboot]
unattended = true
[post]
action = "none"
"""
PASSPHRASE = "boot test passphrase"


def unlock_and_login(machine) -> None:
    """The VM store's prompt (systemd-ask-password on the console, before libvirt), then the login."""
    machine.expect(r"Passphrase or recovery code for the VM store", 600, "systemd -> the unlock prompt")
    # Typed until the prompt echoed every character, then Enter; then the key derivation (argon2id: minutes under
    # TCG).
    machine.type_secret(PASSPHRASE, 150, "passphrase typed")
    machine.expect(r"VM store \S+ is unlocked", 900, "unlock")
    login(machine)


def login(machine) -> None:
    """The unattended first boot (the marker removed, its result saved), then the admin's shell."""
    machine.expect(r"login: ", 900, "unattended first boot -> login prompt")
    machine.answer(r"Password: ", "admin", 100, "password prompt")
    machine.send_line(PASSWORD)
    machine.expect(r"\$ ", 120, "shell")
    machine.send_line("echo MARKER=$(test -e /etc/phyllome/firstboot && echo kept || echo removed) "
                      "STORE=$(sudo -n true 2>/dev/null; ls /var/lib/libvirt/images >/dev/null 2>&1 && echo ok || "
                      "echo no) RESULT=$(test -s /var/lib/phyllome/firstboot.json && echo saved || echo none)")
    found = machine.expect(r"MARKER=(\w+) STORE=\w+ RESULT=(\w+)", 60, "first boot done")
    assert found.group(1) == "removed" and found.group(2) == "saved", found.group(0)


@contextlib.contextmanager
def attached(image: Path) -> Iterator[str]:
    from phyllome_installer.core.runner import SubprocessRunner
    from phyllome_installer.sandbox import detach

    device = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True,
                            check=True).stdout.strip()
    try:
        yield device
    finally:
        detach(SubprocessRunner(), device)


def install(image: Path, workdir: Path, repo: Path, ref: str) -> None:
    from phyllome_installer import answers, engine
    from phyllome_installer.core.runner import SubprocessRunner
    from phyllome_installer.plan import build
    from storage.probe import Prober

    with attached(image) as device:
        answers_file = workdir / "answers.toml"
        answers_file.write_text(ANSWERS.format(disk=device, repo=repo, ref=ref, password=PASSWORD))
        runner = SubprocessRunner()
        plan = build(answers.load_config(answers_file), Prober(runner, include_loop=True, only=[device]).profile(),
                     runner, sysroot=workdir / "sysroot", include_loop=True, log_path=workdir / "install.log")
        result = engine.run(plan)
        assert result.ok, f"{result}\n{(workdir / 'install.log').read_text()[-4000:]}"


@pytest.fixture
def workdir():
    path = Path("/var/tmp") / f"phyllome-boot-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_installed_disk_boots_to_a_login(workdir):
    from payload import build as payload_build

    payload = payload_build.build()
    print(payload.describe())
    image = workdir / "disk.img"
    with open(image, "wb") as handle:
        handle.truncate(12 << 30)
    install(image, workdir, payload.repo, payload_build.REF)

    with UefiMachine(image, workdir / "vm", memory_mib=2048) as machine:
        try:
            machine.expect(r"Linux version 6\.", 300, "firmware -> GRUB -> kernel")
            machine.expect(r"dracut-|Initramfs", 300, "kernel -> initramfs")
            machine.expect(r"ostree-prepare-root|OSTree", 300, "initramfs -> ostree-prepare-root")
            machine.expect(r"Welcome to Debian GNU/Linux 12 \(bookworm\)!", 300, "switch root -> systemd")
            unlock_and_login(machine)
            machine.send_line("echo CMDLINE=$(cat /proc/cmdline) VERSION=$(cat /usr/lib/phyllome/payload-version)")
            found = machine.expect(r"CMDLINE=(.*ostree=\S+.*) VERSION=(\d+)", 60, "ostree deployment booted")
            print("booted:", found.group(0))
        finally:
            print("stages:", machine.timings())
    assert found.group(2) == "1"


# The F2FS disk's VM store is not encrypted: with it encrypted, the unlock unit of the booted F2FS host never
# showed its prompt (the boot stopped there; open in issue 13, docs/install.md). The ext4 test boots through the
# unlock prompt.
F2FS_ANSWERS = ANSWERS.replace('root_fs = "ext4"', 'root_fs = "f2fs"').replace(
    '[storage.encryption]\npassphrase = "boot test passphrase"\n', "")


def f2fs_installed_disk(workdir: Path, tmp_path: Path) -> Path:
    """A disk with the payload installed on an F2FS root by the real command inside the VM tier's guest.

    The install takes about 13 minutes under TCG (the pull of the payload 7, fscrypt's key derivation 3), so the
    installed disk is cached in /var/cache/phyllome-boot by its inputs: the payload's commit (which covers the
    installer's source: it is in the payload), the guest's script and init, the kernel, the answers. Boot it with
    snapshot=on: the cached disk is never written.
    """
    import hashlib
    import json
    import shlex
    import sys

    from payload import build as payload_build
    from tests.boot.smoke_disk import CACHE
    from tests.vm import harness

    payload = payload_build.build()
    kernel = harness.fetch_kernel()
    answers = F2FS_ANSWERS.format(disk="/dev/vda", repo=payload.repo, ref=payload_build.REF, password=PASSWORD)
    root = Path(__file__).resolve().parents[2]
    key = hashlib.sha256("\0".join([payload.commit, kernel.version, answers]).encode()
                         + (root / "tests/vm/guest_install.py").read_bytes() + (root / "tests/vm/init").read_bytes()
                         + Path(__file__).read_bytes()).hexdigest()[:16]
    cached = CACHE / f"installed-f2fs-{key}.img"
    if cached.exists():
        return cached
    initramfs = harness.build_initramfs(kernel)
    image = workdir / "disk.img"
    with open(image, "wb") as handle:
        handle.truncate(12 << 30)
    answers_file = workdir / "answers.toml"  # the guest sees this machine's files at the same paths
    answers_file.write_text(answers)
    script = workdir / "guest.sh"
    command = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "tests.vm.guest_install", "/mnt/out",
                                                 str(answers_file)))
    script.write_text(f"set -eu\ncd {shlex.quote(str(root))}\nexec {command}\n")
    out = tmp_path / "out"
    run = harness.boot(kernel, initramfs, script, image, out, timeout=1800)
    result = json.loads((out / "result.json").read_text()) if (out / "result.json").exists() else None
    assert run.rc == 0 and result, f"guest exit {run.rc}\n{run.guest_log[-4000:]}\n{run.console[-2000:]}"
    assert result["install_rc"] == 0, result["install_tail"]
    assert "encrypt" in result["f2fs_features"]
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob("installed-f2fs-*.img"):
        old.unlink()  # one installed disk at a time (about 1.5 GiB each)
    shutil.move(image, cached)
    return cached


def test_an_f2fs_install_made_in_the_vm_tier_boots(workdir, tmp_path):
    """The real root filesystem: the install runs inside the VM tier's guest (this kernel has no F2FS) with the
    real command (`phyllome-install install --answers`, tests/vm/guest_install.py) onto its /dev/vda; then that
    disk boots by itself under OVMF."""
    image = f2fs_installed_disk(workdir, tmp_path)
    with UefiMachine(image, workdir / "vm", memory_mib=2048, snapshot=True) as machine:
        try:
            machine.expect(r"Linux version 6\.", 300, "firmware -> GRUB -> kernel")
            machine.expect(r"OSTree Prepare OS", 300, "initramfs -> ostree-prepare-root")
            machine.expect(r"Welcome to Debian GNU/Linux 12 \(bookworm\)!", 300, "switch root -> systemd")
            login(machine)
            machine.send_line("echo ROOTFS=$(findmnt -n -o FSTYPE /sysroot) CMDLINE=$(cat /proc/cmdline)")
            found = machine.expect(r"ROOTFS=(\w+) CMDLINE=(.*ostree=\S+.*)", 60, "ostree deployment on F2FS")
            print("booted:", found.group(0))
        finally:
            print("stages:", machine.timings())
    assert found.group(1) == "f2fs"
