"""The fleet tier: machines booted over the network from the live medium's pxe/ (live/build.py, cached under
/var/cache/phyllome-live), served by a stub fleet server on 127.0.0.1 (tests/fleet/server.py)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.boot.harness import OVMF_CODE
from tests.fleet.harness import IPXE_ROM

NEEDS = ("qemu-system-x86_64", "mmdebstrap", "grub-mkrescue", "mksquashfs", "implantisomd5", "openssl")


def pytest_collection_modifyitems(items) -> None:
    missing = [tool for tool in NEEDS if not shutil.which(tool)]
    reason = None
    if missing or not OVMF_CODE.exists() or not IPXE_ROM.exists():
        reason = f"needs {', '.join(missing) or 'ovmf and ipxe-qemu'} (make setup)"
    elif os.geteuid() != 0:
        reason = "needs root (mmdebstrap, overlay mounts, chroot)"
    if reason:
        for item in items:
            if "tests/fleet/" in str(item.fspath):
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
    path = Path("/var/tmp") / f"phyllome-fleet-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)
