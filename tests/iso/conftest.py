"""The ISO tier: the live medium built once per session (live/build.py, cached under /var/cache/phyllome-live)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.boot.harness import OVMF_CODE

NEEDS = ("qemu-system-x86_64", "mmdebstrap", "grub-mkrescue", "mksquashfs", "implantisomd5")


def pytest_collection_modifyitems(items) -> None:
    missing = [tool for tool in NEEDS if not shutil.which(tool)]
    reason = None
    if missing or not OVMF_CODE.exists():
        reason = f"needs {', '.join(missing) or 'ovmf'} (make setup)"
    elif os.geteuid() != 0:
        reason = "needs root (mmdebstrap, overlay mounts, chroot)"
    if reason:
        for item in items:
            if "tests/iso/" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def medium():
    from live import build

    start = time.monotonic()
    built = build.build()
    print(f"\n{built.describe()}; this session {time.monotonic() - start:.0f} s")
    return built


@pytest.fixture
def workdir():
    path = Path("/var/tmp") / f"phyllome-iso-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)
