"""Performance targets of the primary VM (make bench): the whole `vm plan` process, and the Windows 11 dry run.

Both run against libvirt's embedded QEMU driver (no daemon) under TCG on this machine; its capabilities cache is
warmed once first, as a running libvirtd's would be.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.libvirt import embed

TOOL = shutil.which("phyllome-firstboot") or str(Path(sys.executable).parent / "phyllome-firstboot")


@pytest.fixture(scope="module")
def embedded_root():
    with embed.short_root("pvb-") as root:
        uri, env = embed.prepare(root)
        (root / "images").mkdir()
        yield uri, dict(os.environ, **env), root
        for pid in embed.qemu_pids(root):
            os.kill(pid, 9)


def test_vm_plan_whole_process_under_5_s(embedded_root):
    """`phyllome-firstboot vm plan` as a user runs it: interpreter, osinfo-db, libvirt capabilities, KVM probe."""
    uri, env, root = embedded_root
    argv = [TOOL, "vm", "plan", "--os", "win11", "--uri", uri, "--store", str(root / "images"), "--log", "/dev/null"]
    subprocess.run(argv, capture_output=True, env=env, check=True)  # warms libvirt's capabilities cache
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, check=True)
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(f"\nphyllome-firstboot vm plan: median {median:.2f} s over 5 runs")
    assert median < 5.0


def test_windows_11_dry_run_under_8_s(embedded_root):
    """Define, start paused (q35, Secure Boot, tpm-crb through swtpm), destroy, undefine: the check before create."""
    uri, env, root = embedded_root
    argv = [TOOL, "vm", "create", "--dry-run", "--os", "win11", "--memory", "4GiB", "--uri", uri,
            "--store", str(root / "images"), "--log", "/dev/null"]
    seconds = []
    for _ in range(3):
        out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
        seconds.append(float(out.split("dry run passed in ")[1].split(" s")[0]))
    median = statistics.median(seconds)
    print(f"\nWindows 11 dry run: median {median:.1f} s over 3 runs ({', '.join(f'{s:.1f}' for s in seconds)})")
    assert median < 8.0
    assert os.listdir(root / "images") == []
