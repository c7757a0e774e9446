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
[post]
action = "none"
"""


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
            machine.expect(r"login: ", 600, "systemd -> login prompt")
            machine.answer(r"Password: ", "admin", 100, "password prompt")
            machine.send_line(PASSWORD)
            machine.expect(r"\$ ", 120, "shell")
            machine.send_line("echo CMDLINE=$(cat /proc/cmdline) VERSION=$(cat /usr/lib/phyllome/payload-version)")
            found = machine.expect(r"CMDLINE=(.*ostree=\S+.*) VERSION=(\d+)", 60, "ostree deployment booted")
            print("booted:", found.group(0))
        finally:
            print("stages:", machine.timings())
    assert found.group(2) == "1"
