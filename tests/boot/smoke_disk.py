"""A tiny UEFI-bootable GPT disk that needs no installer: an ESP holding GRUB for EFI (grub-mkstandalone, the
removable path EFI/BOOT/BOOTX64.EFI), the VM tier's Debian kernel and a busybox initramfs whose init prints a
prompt on ttyS0, reads one line from it, prints it back with a marker and powers off.

Made without root and without a FAT driver in the kernel (mkfs.vfat -C and mtools write the ESP as a file, which is
then copied into the disk image at its partition's offset). Cached under /var/cache/phyllome-boot by its inputs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.vm.harness import fetch_kernel

CACHE = Path(os.environ.get("PHYLLOME_BOOT_CACHE", "/var/cache/phyllome-boot"))
PROMPT = "PHYLLOME-SMOKE-PROMPT>"
MARKER = "PHYLLOME-SMOKE-GOT"
INIT = f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
exec < /dev/ttyS0 > /dev/ttyS0 2>&1
echo "PHYLLOME-SMOKE-INIT $(/bin/busybox uname -r)"
echo "{PROMPT}"
read -r line
echo "{MARKER} [$line]"
/bin/busybox sync
/bin/busybox poweroff -f
"""
GRUB_CFG = """set timeout=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
search --no-floppy --file --set=root /phyllome-smoke/vmlinuz
echo "PHYLLOME-SMOKE-GRUB"
linux /phyllome-smoke/vmlinuz console=ttyS0,115200 panic=-1 loglevel=3
initrd /phyllome-smoke/initrd.gz
boot
"""
ESP_MIB = 64
ESP_START_MIB = 1


def run(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, **kw)


def _initramfs(work: Path) -> Path:
    staging = work / "initramfs"
    for sub in ("bin", "proc", "dev"):
        (staging / sub).mkdir(parents=True)
    shutil.copy2("/bin/busybox", staging / "bin/busybox")
    (staging / "bin/sh").symlink_to("busybox")
    (staging / "init").write_text(INIT)
    (staging / "init").chmod(0o755)
    files = run("find", ".", cwd=staging).stdout
    cpio = run("cpio", "-o", "-H", "newc", "--quiet", cwd=staging, input=files).stdout
    out = work / "initrd.gz"
    out.write_bytes(run("gzip", "-1", input=cpio).stdout)
    return out


def smoke_disk(cache: Path = CACHE) -> Path:
    """The disk image (cached; boot it with snapshot=on, it is shared)."""
    kernel = fetch_kernel()
    key = hashlib.sha256((INIT + GRUB_CFG + kernel.version).encode() + Path("/bin/busybox").read_bytes()
                         + Path(__file__).read_bytes())
    disk = cache / f"smoke-{key.hexdigest()[:16]}.img"
    if disk.exists():
        return disk
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        (work / "grub.cfg").write_text(GRUB_CFG)
        efi = work / "BOOTX64.EFI"
        run("grub-mkstandalone", "-O", "x86_64-efi", "-o", str(efi),
            "--modules=part_gpt fat search search_fs_file linux serial terminal echo normal",
            "--locales=", "--fonts=", "--themes=", f"boot/grub/grub.cfg={work / 'grub.cfg'}")
        esp = work / "esp.img"
        run("mkfs.vfat", "-F", "32", "-n", "SMOKEESP", "-C", str(esp), str(ESP_MIB * 1024))
        image = f"{esp}"
        run("mmd", "-i", image, "::/EFI", "::/EFI/BOOT", "::/phyllome-smoke")
        run("mcopy", "-i", image, str(efi), "::/EFI/BOOT/BOOTX64.EFI")
        run("mcopy", "-i", image, str(kernel.image), "::/phyllome-smoke/vmlinuz")
        run("mcopy", "-i", image, str(_initramfs(work)), "::/phyllome-smoke/initrd.gz")
        partial = work / "disk.img"
        with open(partial, "wb") as handle:
            handle.truncate((ESP_START_MIB + ESP_MIB + 1) << 20)
        layout = (f"label: gpt\nstart={ESP_START_MIB}MiB, size={ESP_MIB}MiB, "
                  "type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP\n")
        run("sfdisk", "--quiet", str(partial), input=layout.encode())
        with open(partial, "r+b") as handle, open(esp, "rb") as source:
            handle.seek(ESP_START_MIB << 20)
            shutil.copyfileobj(source, handle)
        partial.replace(disk)
    return disk
