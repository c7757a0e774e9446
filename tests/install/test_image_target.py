"""``--target-image`` never harms what is not the installer's (root tier: real files, loop devices, swap, QEMU).

An image attached by someone else and held open, a partition of it active as swap, an image a running QEMU has
locked: each is refused with exit 2, and the other program keeps running, attached and unharmed. A directory, a
device, a size the filesystem cannot hold, a size below the minimum or more than the free space: refused by the
dry run as by the real run, and no file is left behind.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.loopdev import sh

pytestmark = pytest.mark.root
ANSWERS = Path(__file__).resolve().parents[1] / "data" / "answers" / "good" / "minimal.toml"


def install(image: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "phyllome_installer.cli", "install", "--answers", str(ANSWERS),
                           "--target-image", str(image), "--log", str(tmp_path / "install.log"), *extra],
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "install"])
@pytest.mark.parametrize(("name", "size", "says"), [
    ("huge.img", "99999TiB", "cannot hold a file that large"),
    ("tiny.img", "1", "needs at least"),
    ("small.img", "9G", "needs at least"),
])
def test_an_image_size_that_cannot_install_leaves_no_file(tmp_path, dry, name, size, says):
    result = install(tmp_path / name, tmp_path, "--image-size", size, *(["--dry-run"] if dry else []))
    assert result.returncode == 2 and says in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "install"])
@pytest.mark.parametrize(("target", "says"), [("dir", "is a directory"), ("/dev/null", "is a character device"),
                                              ("fifo", "is a FIFO")])
def test_a_directory_or_a_device_is_not_a_disk_image(tmp_path, dry, target, says):
    (tmp_path / "dir").mkdir()
    subprocess.run(["mkfifo", str(tmp_path / "fifo")], check=True)
    path = Path(target) if target.startswith("/") else tmp_path / target
    result = install(path, tmp_path, *(["--dry-run"] if dry else []))
    assert result.returncode == 2 and says in result.stderr and "not a disk image file" in result.stderr


def test_a_full_filesystem_is_refused_before_anything_is_created(tmp_path):
    small = tmp_path / "small-fs"
    small.mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(small))
    try:
        sh("dd", "if=/dev/zero", f"of={small}/filler", "bs=1M", "count=30")
        result = install(small / "disk.img", tmp_path, "--image-size", "16G")
        assert result.returncode == 2 and "free" in result.stderr, result.stderr[-2000:]
        assert not (small / "disk.img").exists()
    finally:
        sh("umount", str(small))


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "disk.img"
    sh("truncate", "-s", "12G", str(path))
    return path


def test_an_image_attached_and_held_open_by_another_program_is_refused_and_nobody_is_killed(tmp_path, image):
    device = sh("losetup", "--find", "--show", str(image)).strip()
    holder = subprocess.Popen(["sleep", "300"], stdin=open(device, "rb"))
    try:
        result = install(image, tmp_path)
        assert result.returncode == 2, result.stderr[-2000:]
        assert f"attached to {device} by another program" in result.stderr
        assert holder.poll() is None  # not killed
        assert sh("losetup", "-j", str(image)).startswith(device)  # not detached
    finally:
        holder.kill()
        holder.wait()
        subprocess.run(["losetup", "-d", device], check=False)


def test_an_image_whose_partition_is_active_swap_is_refused(tmp_path, image):
    sh("sfdisk", "--quiet", str(image), stdin="label: gpt\n,1G,S\n")
    device = sh("losetup", "--find", "--show", "--partscan", str(image)).strip()
    try:
        sh("partx", "-u", device)
        sh("mkswap", f"{device}p1")
        if subprocess.run(["swapon", f"{device}p1"], capture_output=True, check=False).returncode:
            pytest.skip("this kernel refuses swap on a loop device")
        try:
            result = install(image, tmp_path)
            assert result.returncode == 2 and f"{device}p1 is active as swap" in result.stderr, result.stderr
            assert f"{device}p1" in Path("/proc/swaps").read_text()
        finally:
            subprocess.run(["swapoff", f"{device}p1"], check=False)
    finally:
        subprocess.run(["partx", "-d", device], check=False)
        subprocess.run(["losetup", "-d", device], check=False)


def test_an_image_locked_by_a_running_qemu_is_refused_and_the_vm_keeps_running(tmp_path, image):
    qemu = subprocess.Popen(["qemu-system-x86_64", "-S", "-display", "none", "-nodefaults", "-m", "64",
                             "-drive", f"file={image},format=raw,if=virtio"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while str(image.stat().st_ino) not in Path("/proc/locks").read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        result = install(image, tmp_path)
        assert result.returncode == 2 and "holds a" in result.stderr and "lock" in result.stderr, result.stderr
        assert qemu.poll() is None
    finally:
        qemu.kill()
        qemu.wait()


@pytest.mark.parametrize(("ref", "tree", "says"), [
    ("test/x86_64/nope", {"usr/lib/os-release": "ID=x\n"}, "is not in the repository"),
    ("test/x86_64/broken", {"usr/lib/os-release": "ID=x\n"}, "/usr/lib/modules"),
    ("test/x86_64/broken", {"usr/lib/modules/6.1/vmlinuz": "k", "usr/lib/modules/6.1/initramfs.img": "i"},
     "/usr/lib/os-release"),
    ("test/x86_64/broken", {"usr/lib/os-release": "ID=x\n", "usr/lib/modules/6.1/vmlinuz": "k",
                            "usr/lib/modules/6.1/initramfs.img": "i"}, "/.fscrypt"),
])
def test_the_dry_run_refuses_the_payload_the_install_would_refuse(tmp_path, image, ref, tree, says):
    from tests.install.test_payload_check import commit

    repo = tmp_path / "repo"
    commit(repo, tmp_path / "tree", tree, ("var", "sysroot"))
    answers = tmp_path / "a.toml"
    answers.write_text(ANSWERS.read_text().replace("/run/install/repo", str(repo))
                       .replace("phyllome/x86_64/stable", ref))
    result = subprocess.run([sys.executable, "-m", "phyllome_installer.cli", "install", "--answers", str(answers),
                             "--target-image", str(image), "--dry-run", "--log", str(tmp_path / "log")],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "the install would fail: payload" in result.stderr and says in result.stderr
    assert image.stat().st_blocks == 0  # nothing was written
