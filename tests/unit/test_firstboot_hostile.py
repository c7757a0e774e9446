"""``phyllome-firstboot check --root``: a missing root is exit 2; malformed files give WARN or NOTE, never a
traceback or a hang (FIFOs, devices, symlink loops, binary content, wrong JSON types)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MACHINES = Path(__file__).resolve().parents[1] / "data" / "machines"


def check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from phyllome_installer.cli import firstboot_main; "
                               "sys.exit(firstboot_main(sys.argv[1:]))", "check", "--json", "--root", str(root),
         "--save", str(root.parent / "saved.json"), "--log", str(root.parent / "log")],
        capture_output=True, text=True, check=False, timeout=60)


def test_a_missing_root_is_bad_input(tmp_path):
    result = check(tmp_path / "nope")
    assert result.returncode == 2
    assert "--root" in result.stderr and "no such directory" in result.stderr


@pytest.fixture
def hostile(tmp_path) -> Path:
    root = tmp_path / "machine"
    shutil.copytree(MACHINES / "amd-desktop-isolated-dgpu", root, symlinks=True)
    os.unlink(root / "proc" / "cpuinfo")
    os.mkfifo(root / "proc" / "cpuinfo")  # nobody writes: a blocking read would hang
    (root / "proc" / "meminfo").write_bytes(b"MemTotal:\xff\xfe\x00 garbage kB\n" * 3)
    (root / "proc" / "cmdline").unlink()
    (root / "proc" / "cmdline").symlink_to("cmdline")  # a symlink loop
    (root / "sys" / "fs" / "cgroup").mkdir(parents=True, exist_ok=True)
    cgroup = root / "sys" / "fs" / "cgroup" / "cgroup.controllers"
    cgroup.unlink(missing_ok=True)
    cgroup.symlink_to("/dev/zero")  # endless
    (root / "phyllome-capture.json").write_text(json.dumps({"kvm": "yes", "store_free_bytes": "lots",
                                                            "store_encrypted": 5}))
    for gpu in (root / "sys" / "bus" / "pci" / "devices").iterdir():
        if (gpu / "class").exists() and (gpu / "class").read_text().startswith("0x03"):
            (gpu / "sriov_totalvfs").write_text("many\n")
    return root


def test_malformed_files_give_warn_or_note_never_a_traceback(hostile):
    result = check(hostile)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert result.returncode in (0, 1)
    data = json.loads(result.stdout)
    by_id = {c["id"]: c for c in data["checks"]}
    unreadable = by_id["unreadable"]
    assert unreadable["status"] == "NOTE"
    assert "/proc/cpuinfo is a FIFO, not a regular file" in unreadable["found"]
    assert "/proc/cmdline is a symbolic link loop" in unreadable["found"]
    assert "cgroup.controllers is a character device" in unreadable["found"]
    assert "/phyllome-capture.json: kvm is not a dict" in unreadable["found"]
    assert by_id["store-space"]["status"] == "NOTE" and by_id["kvm"]["status"] == "FAIL"


def test_a_check_that_meets_malformed_data_never_raises(tmp_path):
    from firstboot.checks import Machine, run_checks

    machine = Machine(MACHINES / "intel-laptop-gvtg")
    machine.capture = {"kvm": {"exists": True, "api_version": "twelve", "create_vm": True}}  # a value of a wrong type
    machine.read = lambda rel, default="": "\x00\xff" * 10  # binary in every file  # noqa: E731
    checks = {c.id: c for c in run_checks(machine)}
    assert all(c.status in ("PASS", "WARN", "FAIL", "NOTE") for c in checks.values())
    assert checks["kvm"].status == "FAIL"


def test_a_capture_file_that_is_not_an_object_is_a_note(tmp_path):
    root = tmp_path / "machine"
    shutil.copytree(MACHINES / "intel-laptop-gvtg", root, symlinks=True)
    (root / "phyllome-capture.json").write_text("[1, 2, 3]")
    result = check(root)
    assert "Traceback" not in result.stderr
    found = {c["id"]: c for c in json.loads(result.stdout)["checks"]}["unreadable"]["found"]
    assert "/phyllome-capture.json is not a JSON object" in found
