"""A tiny bootable installation ISO: the VM tier's Debian kernel and a busybox initramfs whose init prints a
marker on ttyS0 and powers off, made UEFI-bootable with grub-mkrescue (xorriso, mtools, grub-efi-amd64-bin).
Cached under /var/cache/phyllome-vm by its inputs."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.vm.harness import CACHE, fetch_kernel

MARKER = "PHYLLOME-PRIMARY-VM-BOOTED"
INIT = f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
echo "{MARKER} $(/bin/busybox uname -r)" > /dev/ttyS0
/bin/busybox sync
/bin/busybox poweroff -f
"""
GRUB_CFG = """set timeout=0
serial --unit=0 --speed=115200
terminal_output serial console
menuentry "phyllome tiny" {
  linux /boot/vmlinuz console=ttyS0,115200 panic=-1 quiet loglevel=3
  initrd /boot/initrd.gz
}
"""


def _initramfs(work: Path) -> Path:
    staging = work / "initramfs"
    for sub in ("bin", "proc", "dev"):
        (staging / sub).mkdir(parents=True)
    shutil.copy2("/bin/busybox", staging / "bin/busybox")
    (staging / "init").write_text(INIT)
    (staging / "init").chmod(0o755)
    files = subprocess.run(["find", "."], cwd=staging, capture_output=True, check=True).stdout
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=staging, input=files, capture_output=True,
                          check=True).stdout
    out = work / "initrd.gz"
    out.write_bytes(subprocess.run(["gzip", "-1"], input=cpio, capture_output=True, check=True).stdout)
    return out


def tiny_iso(cache: Path = CACHE) -> Path:
    kernel = fetch_kernel(cache)
    key = hashlib.sha256((INIT + GRUB_CFG + kernel.version).encode() + Path("/bin/busybox").read_bytes())
    iso = cache / f"tiny-{key.hexdigest()[:16]}.iso"
    if iso.exists():
        return iso
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        tree = work / "iso"
        (tree / "boot/grub").mkdir(parents=True)
        shutil.copy2(kernel.image, tree / "boot/vmlinuz")
        shutil.copy2(_initramfs(work), tree / "boot/initrd.gz")
        (tree / "boot/grub/grub.cfg").write_text(GRUB_CFG)
        partial = work / "tiny.iso"
        subprocess.run(["grub-mkrescue", "-o", str(partial), str(tree), "--", "-volid", "PHYLLOME_TINY"],
                       capture_output=True, check=True)
        partial.replace(iso)
    return iso
