"""Build Phyllome OS's live medium: a hybrid ISO (UEFI and BIOS, optical or USB stick) in Fedora's live layout.

    python -m live.build               # build (or find in the cache); print the ISO, its size and the times
    python -m live.build --print-iso   # only the ISO's path (building it when needed)

Two layers, each cached by its inputs under `$PHYLLOME_LIVE_CACHE` (default /var/cache/phyllome-live):

* the live root (`live/root.py`, minutes): Debian 12 packages, the kernel, the installer's venv with the
  project's dependencies, the initramfs (dracut: dmsquash-live, 90phyllome);
* the medium (`medium-<key>/`, a minute or two): the project's wheel installed into that venv on an overlay of
  the cached root (never into the system's site-packages), its installer unit enabled, `live/overlay/` (the
  console, tty2's shell, the repository's mount), the console font (`live/font.py`), squashed into
  `LiveOS/squashfs.img`; the payload's ostree repository (`payload/build.py`, cached) in `/repo`; the kernel and
  initramfs in `/images/pxeboot`; GRUB's menu (`live/grub.cfg`); `grub-mkrescue` (xorriso) makes the hybrid
  image, `implantisomd5` its media check; SHA256SUMS beside it, and the PXE artifacts in `pxe/`
  (vmlinuz, initrd.img, squashfs.img, boot.ipxe: docs/fleet.md). Key: the root's
  key, the payload's, every file of the project that goes into the wheel, `live/`'s light files.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from live import font
from live import root as live_root
from payload import build as payload_build
from phyllome_installer import units

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = live_root.CACHE
LABEL = "PHYLLOME_LIVE"
"""The ISO's volume label: root=live:CDLABEL=... finds the medium by it."""
ISO_NAME = "phyllome-live.x86_64.iso"
VENV = "usr/lib/phyllome/venv"
COMMANDS = ("phyllome-install", "phyllome-firstboot")
OVERLAY_UNITS = ("phyllome-installer-serial.service", "run-install-repo.mount", "getty@tty2.service")
"""Enabled after live/overlay/ is copied in: the serial console's installer, the payload's mount, a shell on tty2."""
LIGHT_FILES = ("build.py", "font.py", "grub.cfg", "boot.ipxe")


def log(message: str) -> None:
    print(f"live: {message}", flush=True)


def run(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, **kw)


def light_files() -> list[Path]:
    overlay = sorted(p for p in (HERE / "overlay").rglob("*") if p.is_file() or p.is_symlink())
    return [*(HERE / name for name in LIGHT_FILES), *overlay, *(ROOT / name for name in payload_build.WHEEL_FILES),
            *payload_build.project_files()]


def key() -> str:
    return f"{live_root.key()}-{payload_build.cache_key()}-{payload_build._digest(light_files(), '')}"


@dataclass
class Medium:
    iso: Path
    sha256: str
    size: int
    pxe: Path
    seconds: float
    """This medium's own build (the light layer), also on a cache hit."""
    root_seconds: float
    """The live root's cold build."""
    cached: bool

    def describe(self) -> str:
        how = "cache hit" if self.cached else "built"
        return (f"{how}: {self.iso} ({self.size / 2**20:.0f} MiB, sha256 {self.sha256[:16]}...); "
                f"medium layer {self.seconds:.0f} s, live root {self.root_seconds:.0f} s cold")


def in_root(merged: Path, *argv: str) -> None:
    run("chroot", str(merged), "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C.UTF-8",
        *argv, stdout=subprocess.DEVNULL)


def add_project(merged: Path, wheel: Path) -> None:
    """The light layer, written into the overlay's upper directory: the wheel in the private venv, the
    commands, the units, the live configuration and the console font."""
    (merged / "tmp" / wheel.name).write_bytes(wheel.read_bytes())
    in_root(merged, f"/{VENV}/bin/pip", "install", "-q", "--no-deps", "--no-index", "--no-cache-dir",
            "--disable-pip-version-check", f"/tmp/{wheel.name}")
    (merged / "tmp" / wheel.name).unlink()
    site = next((merged / VENV / "lib").glob("python3*/site-packages"))
    for top in payload_build.PROJECT:
        assert (site / top).is_dir(), f"the wheel did not install {top} into the venv"
    for command in COMMANDS:
        link = merged / "usr/bin" / command
        link.unlink(missing_ok=True)
        link.symlink_to(f"/{VENV}/bin/{command}")
    units.install(merged, units.LIVE_UNITS)  # the installer on tty1, the one way (phyllome_installer/units.py)
    run("cp", "-a", "--no-preserve=ownership", f"{HERE / 'overlay'}/.", f"{merged}/")
    font.install(merged)
    run("systemctl", f"--root={merged}", "enable", *OVERLAY_UNITS, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)


def squash(rootfs: Path, wheel: Path, out: Path, work: Path) -> None:
    """The cached root (read-only, the overlay's lower layer) plus the project, squashed."""
    upper, ovlwork, merged = work / "upper", work / "ovlwork", work / "merged"
    for path in (upper, ovlwork, merged):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    run("mount", "-t", "overlay", "overlay", "-o", f"lowerdir={rootfs},upperdir={upper},workdir={ovlwork}",
        str(merged))
    try:
        add_project(merged, wheel)
        out.parent.mkdir(parents=True, exist_ok=True)
        # The kernel and initramfs are on the medium (/images/pxeboot), not needed again in the root.
        run("mksquashfs", str(merged), str(out), "-noappend", "-comp", "zstd", "-quiet", "-no-progress",
            "-wildcards", "-e", "boot/initrd.img-*", "boot/vmlinuz-*", stdout=subprocess.DEVNULL)
    finally:
        subprocess.run(["umount", str(merged)], check=False)
    for path in (upper, ovlwork, merged):
        shutil.rmtree(path, ignore_errors=True)


def make_iso(staging: Path, iso: Path) -> None:
    partial = iso.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    # grub-mkrescue: El Torito for UEFI (an EFI system image) and BIOS (i386-pc, when grub-pc-bin is installed),
    # plus the hybrid partition table that makes the same image boot from a USB stick written with dd.
    run("grub-mkrescue", "-o", str(partial), str(staging), "--", "-volid", LABEL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # The media check (rd.live.check, checkisomd5 in the initramfs): the image's MD5 in the primary volume
    # descriptor's application area.
    run("implantisomd5", "--force", str(partial), stdout=subprocess.DEVNULL)
    partial.rename(iso)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def build(cache: Path = CACHE) -> Medium:
    """The ISO (cached by key(); a second build of the same key waits for the first, then hits)."""
    base = live_root.build(cache)
    payload = payload_build.build()
    work = cache / f"medium-{key()}"
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = work / "complete.json"
        iso = work / ISO_NAME
        if done.exists():
            info = json.loads(done.read_text())
            return Medium(iso, info["sha256"], info["size"], work / "pxe", info["seconds"], base.seconds, True)
        start = time.monotonic()
        staging = work / "staging"
        for stale in (staging, work / "pxe", work / "wheel", work / "SHA256SUMS", iso):
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink(missing_ok=True)
        log(f"making the medium {work.name} (live root {'cached' if base.cached else 'built'}, payload "
            f"{payload.commit[:12]})")
        wheel = payload_build.build_wheel(work / "wheel")
        squash(base.rootfs, wheel, staging / "LiveOS" / "squashfs.img", work)
        pxeboot = staging / "images" / "pxeboot"
        pxeboot.mkdir(parents=True)
        shutil.copy2(base.vmlinuz, pxeboot / "vmlinuz")
        shutil.copy2(base.initrd, pxeboot / "initrd.img")
        run("cp", "-al", str(payload.repo), str(staging / "repo"))  # hard links: the payload cache's objects
        grub = staging / "boot" / "grub"
        grub.mkdir(parents=True)
        (grub / "grub.cfg").write_text((HERE / "grub.cfg").read_text().replace("@LABEL@", LABEL))
        log(f"squashfs and staging done in {time.monotonic() - start:.0f} s; making the ISO")
        make_iso(staging, iso)
        pxe = work / "pxe"  # the network boot's artifacts: the same kernel, initramfs and root
        pxe.mkdir()
        for path in (pxeboot / "vmlinuz", pxeboot / "initrd.img", staging / "LiveOS" / "squashfs.img"):
            os.link(path, pxe / path.name)
        shutil.copy2(HERE / "boot.ipxe", pxe / "boot.ipxe")  # iPXE: root=live:http://.../squashfs.img (livenet)
        shutil.rmtree(staging)
        shutil.rmtree(work / "wheel")
        digest = sha256(iso)
        (work / "SHA256SUMS").write_text(f"{digest}  {ISO_NAME}\n")
        seconds = time.monotonic() - start
        size = iso.stat().st_size
        done.write_text(json.dumps({"sha256": digest, "size": size, "seconds": round(seconds, 1)}))
        remove_old_media(cache, keep=work)
        return Medium(iso, digest, size, pxe, seconds, base.seconds, False)


def remove_old_media(cache: Path, keep: Path) -> None:
    """One medium at a time (about 800 MiB each): older ones nobody is building are removed."""
    for old in cache.glob("medium-*"):
        if old == keep:
            continue
        try:
            with open(old / "lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(old)
        except OSError:
            continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print-iso", action="store_true", help="print only the ISO's path")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("live: mmdebstrap, the overlay mount and chroot need root", file=sys.stderr)
        return 1
    start = time.monotonic()
    medium = build()
    if args.print_iso:
        print(medium.iso)
        return 0
    log(medium.describe() + f"; this run {time.monotonic() - start:.1f} s")
    log(f"SHA256SUMS: {medium.iso.parent / 'SHA256SUMS'}; PXE artifacts: {medium.pxe}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
