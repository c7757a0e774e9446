"""The dracut tier: the VM tier's kernel, an initramfs built by dracut with 90phyllome (cached), one boot per test."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dracut import harness
from tests.vm.harness import fetch_kernel


@pytest.fixture(scope="session")
def live():
    """Boots the initramfs with extra kernel arguments (and optionally a virtio disk); returns the console."""
    if shutil.which("dracut") is None:
        pytest.fail("dracut is not installed: make setup installs dracut-core")
    kernel = fetch_kernel()
    initramfs = harness.build_initramfs(kernel)

    def run(*kargs: str, disk: Path | None = None, timeout: int = 300) -> harness.Boot:
        return harness.boot(kernel, initramfs, list(kargs), disk=disk, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def live_systemd(tmp_path_factory):
    """The same with systemd in the initramfs (as a Fedora live image boots) and a tiny ext4 live root."""
    kernel = fetch_kernel()
    initramfs = harness.build_initramfs(kernel, harness.SYSTEMD_MODULES)
    root = harness.live_root_disk(tmp_path_factory.mktemp("live-root") / "root.img")

    def run(*kargs: str, disk: Path | None = None, timeout: int = 300) -> harness.Boot:
        return harness.boot(kernel, initramfs, list(kargs), disk=disk, live_root=root, timeout=timeout)

    return run


@dataclass(frozen=True)
class Link:
    """A symbolic link on an ext4 key (FAT has none)."""

    target: str


def labelled_disk(path: Path, label: str, files: dict[str, bytes | Link], fstype: str = "vfat") -> Path:
    """A 40 MiB disk image: GPT, one partition with a ``fstype`` filesystem named ``label`` holding ``files``.
    Built on the file itself (sfdisk, mkfs.vfat --offset and mtools, or mkfs.ext4 -E offset -d): no loop device.
    FAT labels have at most 11 characters: PHYLLOME-ANS (12) needs ext4 (16) or ISO 9660."""
    with open(path, "wb") as handle:
        handle.truncate(40 << 20)
    subprocess.run(["sfdisk", "-q", str(path)], input="label: gpt\nstart=2048, type=linux\n", text=True,
                   check=True)
    if fstype == "ext4":
        tree = path.parent / "tree"
        for name, data in files.items():
            (tree / name.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, Link):
                (tree / name.lstrip("/")).symlink_to(data.target)
            else:
                (tree / name.lstrip("/")).write_bytes(data)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, "-E", "offset=1048576", "-d", str(tree), str(path),
                        "30M"], capture_output=True, check=True)
        return path
    subprocess.run(["mkfs.vfat", "--offset", "2048", "-n", label, str(path), "39900"], capture_output=True,
                   check=True)
    image = f"{path}@@1M"
    for name, data in files.items():
        source = path.parent / Path(name).name
        source.write_bytes(data)
        folder = str(Path(name).parent)
        if folder not in ("/", "."):
            subprocess.run(["mmd", "-D", "s", "-i", image, "::" + folder], capture_output=True, check=False)
        subprocess.run(["mcopy", "-o", "-i", image, str(source), "::" + name], check=True)
    return path
