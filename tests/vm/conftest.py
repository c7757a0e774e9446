"""The real-kernel tier: a QEMU guest per test, the kernel and initramfs cached between runs."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from tests.vm import harness

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def guest():
    """Boots a guest that runs a guest-side Python module of this project; returns its result and logs."""
    kernel = harness.fetch_kernel()
    initramfs = harness.build_initramfs(kernel)
    accel = harness.accelerator(kernel, initramfs)

    def run(module: str, tmp_path: Path, *args: str, disk_size: str = "12G", timeout: int = 900):
        disk = harness.CACHE / f"disk-{module.rsplit('.', 1)[-1]}.img"  # the guest's /tmp is its own tmpfs
        disk.unlink(missing_ok=True)
        with open(disk, "wb") as handle:
            handle.truncate(int(disk_size.rstrip("G")) << 30)
        script = harness.CACHE / f"run-{module.rsplit('.', 1)[-1]}.sh"
        command = " ".join(shlex.quote(a) for a in (sys.executable, "-m", module, "/mnt/out", *args))
        script.write_text(f"set -eu\ncd {shlex.quote(str(ROOT))}\nexec {command}\n")
        out = tmp_path / "out"
        try:
            result = harness.boot(kernel, initramfs, script, disk, out, accel=accel, timeout=timeout)
        finally:
            disk.unlink(missing_ok=True)
        data = json.loads((out / "result.json").read_text()) if (out / "result.json").exists() else None
        return result, data

    return run
