"""The live medium's heavy layer: the Debian 12 live root (packages, kernel, the installer's venv with the
project's dependencies, the live initramfs), cached by its inputs.

Key: `packages.txt`, `customize.sh`, this file, the dependencies in pyproject.toml, and the dracut modules
(`dracut/90phyllome`, `live/dracut/91phyllome-live`) built into the initramfs. The project's own code is not in
it: `live/build.py` adds the wheel as a light layer, so a change of the installer does not rebuild this root
(minutes), only the medium.

The root is kept as a directory, `$PHYLLOME_LIVE_CACHE/root-<key>/rootfs` (default /var/cache/phyllome-live),
never written after it is complete: the light layer mounts it read-only as the lower layer of an overlay.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from payload import build as payload_build

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODULE = ROOT / "dracut" / "90phyllome"
LIVE_MODULE = HERE / "dracut" / "91phyllome-live"
CACHE = Path(os.environ.get("PHYLLOME_LIVE_CACHE", "/var/cache/phyllome-live"))
DEBS = payload_build.CACHE / "debs"
"""Downloaded .debs, shared with the payload's build (most packages are the same)."""


def log(message: str) -> None:
    print(f"live: {message}", flush=True)


def packages() -> list[str]:
    names = []
    for line in (HERE / "packages.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


def key() -> str:
    files = [HERE / "root.py", HERE / "customize.sh", HERE / "packages.txt", *sorted(MODULE.iterdir()),
             *sorted(LIVE_MODULE.iterdir())]
    return payload_build._digest(files, payload_build.SUITE + "\0" + "\0".join(payload_build.dependencies()))


@dataclass
class LiveRoot:
    rootfs: Path
    kernel: str
    seconds: float
    """How long the cold build took (also on a cache hit)."""
    cached: bool

    @property
    def vmlinuz(self) -> Path:
        return self.rootfs / "boot" / f"vmlinuz-{self.kernel}"

    @property
    def initrd(self) -> Path:
        return self.rootfs / "boot" / f"initrd.img-{self.kernel}"


def mmdebstrap(rootfs: Path, wheels: Path) -> None:
    DEBS.mkdir(parents=True, exist_ok=True)
    argv = ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=directory", "--skip=download/empty",
            "--aptopt=APT::Install-Recommends \"false\"", f"--include={','.join(packages())}"]
    argv += [f"--dpkgopt=path-exclude={p}" for p in payload_build.DPKG_EXCLUDES]
    argv += [f"--dpkgopt=path-include={p}" for p in payload_build.DPKG_INCLUDES]
    argv += [
        f'--setup-hook=mkdir -p "$1"/var/cache/apt/archives && cp -a {DEBS}/. "$1"/var/cache/apt/archives/',
        # No initramfs while packages are installed: customize.sh builds the live one.
        "--essential-hook=chroot \"$1\" dpkg-divert --local --rename "
        "--divert /usr/bin/dracut.phyllome-build --add /usr/bin/dracut",
        f'--customize-hook=cp -a "$1"/var/cache/apt/archives/. {DEBS}/ && rm -f {DEBS}/lock && rm -rf {DEBS}/partial',
        f'--customize-hook={HERE / "customize.sh"} "$1" {wheels} {MODULE} {LIVE_MODULE}',
        payload_build.SUITE, str(rootfs), *payload_build.mirror_sources()]
    subprocess.run(argv, stdin=subprocess.DEVNULL, check=True)


def build(cache: Path = CACHE) -> LiveRoot:
    """The live root (cached): a second build of the same key waits for the first (flock), then hits."""
    work = cache / f"root-{key()}"
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = work / "complete.json"
        if done.exists():
            info = json.loads(done.read_text())
            return LiveRoot(work / "rootfs", info["kernel"], info["seconds"], True)
        start = time.monotonic()
        for stale in ("rootfs", "rootfs.partial", "wheels"):
            shutil.rmtree(work / stale, ignore_errors=True)
        log(f"building the live root {work.name} ({len(packages())} packages and their dependencies)")
        payload_build.build_wheels(work / "wheels")
        mmdebstrap(work / "rootfs.partial", work / "wheels")
        shutil.rmtree(work / "wheels")
        kernel = next(p.name for p in (work / "rootfs.partial/usr/lib/modules").iterdir())
        (work / "rootfs.partial").rename(work / "rootfs")
        seconds = time.monotonic() - start
        done.write_text(json.dumps({"kernel": kernel, "seconds": round(seconds, 1)}))
        log(f"live root built in {seconds:.0f} s")
        for old in cache.glob("root-*"):  # one live root at a time (about 900 MiB), unless another build holds it
            if old != work:
                try:
                    with open(old / "lock", "w") as old_lock:
                        fcntl.flock(old_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        shutil.rmtree(old)
                except OSError:
                    continue
        return LiveRoot(work / "rootfs", kernel, seconds, False)
