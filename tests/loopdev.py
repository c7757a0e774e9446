"""Real loop devices for the root tier: sparse images, attached with partition scanning, always detached."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path


def sh(*argv: str, stdin: str | None = None) -> str:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=True).stdout


@contextlib.contextmanager
def loop_image(path: Path, size: str = "64M", sfdisk_script: str | None = None,
               sector_size: int | None = None) -> Iterator[str]:
    """A sparse image at ``path`` attached as a loop device (``losetup -P``); detached on exit, whatever happens.
    ``sector_size``: the device's logical sector size (4096: a "4Kn" disk)."""
    sh("truncate", "-s", size, str(path))
    if sfdisk_script is not None:
        sh("sfdisk", "--quiet", str(path), stdin=sfdisk_script)
    sectors = ("--sector-size", str(sector_size)) if sector_size else ()
    device = sh("losetup", "--find", "--show", "--partscan", *sectors, str(path)).strip()
    try:
        subprocess.run(["partx", "-d", device], check=False)  # stale partitions of this loop number (a crash)
        if sfdisk_script is not None:
            sh("partx", "-u", device)  # no udev here: --partscan alone does not show the partitions
        yield device
    finally:
        for line in Path("/proc/mounts").read_text().splitlines()[::-1]:
            source, target = line.split()[:2]
            if source.startswith(device):
                subprocess.run(["umount", "-l", target], check=False)
        # Dirty pages of the device or its partitions must reach this image before the device is reused.
        subprocess.run(["sync"], check=False)
        subprocess.run(["blockdev", "--flushbufs", device], check=False)
        subprocess.run(["partx", "-d", device], check=False)  # losetup -d leaves partx's partitions behind
        subprocess.run(["losetup", "-d", device], check=False)
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def mounted(device: str, where: Path, *options: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    sh("mount", *(("-o", ",".join(options)) if options else ()), device, str(where))
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def sha256(path: str) -> str:
    """The digest of a device's content. Its buffer cache is dropped first: a reused /dev/loopN can otherwise
    return pages cached from the image it was attached to before."""
    if path.startswith("/dev/"):
        sh("blockdev", "--flushbufs", path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
