"""What the tiers that boot the live medium share (tests/iso, tests/fleet): the skip when this machine cannot
build or boot it, the medium built once (live/build.py, cached under /var/cache/phyllome-live), a scratch folder."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

NEEDS = ("qemu-system-x86_64", "mmdebstrap", "grub-mkrescue", "mksquashfs", "implantisomd5")


def skip_unless_able(items, folder: str, tools: tuple[str, ...] = (), files: tuple[Path, ...] = ()) -> None:
    """Skip the tests under `folder` on a machine without the tools, the files (firmware, ROMs) or root."""
    missing = [tool for tool in (*NEEDS, *tools) if not shutil.which(tool)]
    missing += [path.name for path in files if not path.exists()]
    reason = f"needs {', '.join(missing)} (make setup)" if missing else \
        "needs root (mmdebstrap, overlay mounts, chroot)" if os.geteuid() != 0 else None
    if reason:
        for item in items:
            if f"tests/{folder}/" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=reason))


def built_medium():
    from live import build

    start = time.monotonic()
    built = build.build()
    print(f"\n{built.describe()}; this session {time.monotonic() - start:.0f} s")
    return built


def scratch(prefix: str) -> Iterator[Path]:
    """A folder under /var/tmp (room for disk images), removed afterwards."""
    path = Path("/var/tmp") / f"{prefix}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)
