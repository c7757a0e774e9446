"""The first-boot commands with hostile input. ``check --root``: a missing root is exit 2; malformed files give
WARN or NOTE, never a traceback or a hang (FIFOs, devices, symlink loops, binary content, wrong JSON types, huge
numbers, deep JSON, IOMMU group links to nowhere); ``check --save`` writes regular files only. ``vm plan`` refuses
what ``vm create`` refuses; ``run`` refuses a machine that is not an installed Phyllome host."""

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


# ---------------------------------------------------------------------------------------------- numbers, depth, links


def _copy(tmp_path: Path, name: str = "amd-desktop-isolated-dgpu") -> Path:
    root = tmp_path / "machine"
    shutil.copytree(MACHINES / name, root, symlinks=True)
    return root


def _gpus(root: Path) -> list[Path]:
    devices = root / "sys" / "bus" / "pci" / "devices"
    return [d for d in devices.iterdir() if (d / "class").exists() and (d / "class").read_text().startswith("0x03")]


@pytest.mark.parametrize("digits", [25, 5000])  # 5000: beyond Python's 4300-digit conversion limit
def test_huge_integers_are_malformed_files_not_crashes(tmp_path, digits):
    root = _copy(tmp_path)
    huge = "9" * digits
    (root / "proc" / "meminfo").write_text(f"MemTotal:       {huge} kB\n")
    for gpu in _gpus(root):
        (gpu / "sriov_totalvfs").write_text(huge + "\n")
    (root / "phyllome-capture.json").write_text('{"store_free_bytes": ' + huge + ', "store_encrypted": true}')
    result = check(root)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    data = json.loads(result.stdout)
    by_id = {c["id"]: c for c in data["checks"]}
    assert by_id["ram"]["found"] == "0.0 GiB of RAM"
    assert "MemTotal too large" in by_id["unreadable"]["found"]
    assert by_id["store-space"]["status"] == "NOTE"  # the free space is not believed
    assert all(g["sriov_totalvfs"] == 0 for g in data["gpus"])


def test_a_huge_captured_number_within_json_limits_is_out_of_range(tmp_path):
    root = _copy(tmp_path)
    (root / "phyllome-capture.json").write_text('{"store_free_bytes": 1' + "0" * 300 + "}")  # float division overflows
    result = check(root)
    assert "Traceback" not in result.stderr, result.stderr
    by_id = {c["id"]: c for c in json.loads(result.stdout)["checks"]}
    assert by_id["store-space"]["status"] == "NOTE"
    assert "store_free_bytes is out of range" in by_id["unreadable"]["found"]


def test_deeply_nested_firmware_descriptors_are_skipped(tmp_path):
    root = _copy(tmp_path)
    firmware = root / "usr" / "share" / "qemu" / "firmware"
    firmware.mkdir(parents=True, exist_ok=True)
    (firmware / "00-deep.json").write_text("[" * 100000 + "]" * 100000)
    (firmware / "01-deep-object.json").write_text('{"a":' * 50000 + "1" + "}" * 50000)
    (firmware / "02-wrong-types.json").write_text('{"interface-types": "uefi", "targets": 5, "features": {}}')
    (firmware / "03-odd-targets.json").write_text('{"interface-types": ["uefi"], "targets": [1, "x"]}')
    result = check(root)
    assert "Traceback" not in result.stderr, result.stderr
    by_id = {c["id"]: c for c in json.loads(result.stdout)["checks"]}
    assert by_id["ovmf"]["status"] in ("PASS", "WARN", "FAIL")
    assert "could not be checked" not in by_id["ovmf"]["found"]


@pytest.mark.parametrize("target", ["..", "/", "../../../kernel", "../../../kernel/iommu_groups/x1", ""])
def test_an_iommu_group_link_to_no_group_is_never_isolated(tmp_path, target):
    root = _copy(tmp_path)
    gpus = _gpus(root)
    assert gpus
    for gpu in gpus:
        (gpu / "iommu_group").unlink(missing_ok=True)
        if target:
            (gpu / "iommu_group").symlink_to(target)
        else:
            (gpu / "iommu_group").symlink_to(gpu / "iommu_group")  # a loop
    result = check(root)
    assert "Traceback" not in result.stderr, result.stderr
    data = json.loads(result.stdout)
    assert data["gpus"] and all(not g["isolated"] and g["iommu_group"] is None for g in data["gpus"])


def test_the_isolated_fixture_still_is(tmp_path):
    """The case above can fail: the same machine, links untouched, has an isolated GPU."""
    result = check(_copy(tmp_path))
    assert any(g["isolated"] and g["iommu_group"] for g in json.loads(result.stdout)["gpus"])


# ---------------------------------------------------------------------------------------------- check --save


def save(root: Path, target: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from phyllome_installer.cli import firstboot_main; "
                               "sys.exit(firstboot_main(sys.argv[1:]))", "check", "--root", str(root),
         "--save", str(target), "--log", "/dev/null"], capture_output=True, text=True, check=False, timeout=60)


def test_save_never_replaces_a_device_a_link_or_a_special_file(tmp_path):
    root = MACHINES / "intel-laptop-gvtg"
    null_before = os.stat("/dev/null")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    link = tmp_path / "link.json"
    link.symlink_to(victim)
    hard = tmp_path / "hard.json"
    os.link(victim, hard)
    folder = tmp_path / "dir.json"
    folder.mkdir()
    for target, reason in [("/dev/null", "is in /dev"), ("/dev/stdout", "is in /dev"),
                           ("/proc/self/comm", "is in /proc"), (fifo, "is a FIFO"), (link, "is a symbolic link"),
                           (hard, "has other hard links"),
                           (folder, "is a directory")]:
        result = save(root, target)
        assert result.returncode == 2, (target, result.stderr)
        assert reason in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert result.stdout == ""  # refused before the checks ran
    after = os.stat("/dev/null")
    assert (after.st_ino, after.st_rdev) == (null_before.st_ino, null_before.st_rdev)
    assert fifo.is_fifo() and link.is_symlink() and victim.read_text() == "keep me\n" and folder.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.json", "fifo", "hard.json", "link.json", "victim"]


def test_save_writes_a_new_or_regular_file_whole(tmp_path):
    target = tmp_path / "sub" / "hardware.json"
    assert save(MACHINES / "intel-laptop-gvtg", target).returncode in (0, 1)
    first = json.loads(target.read_text())
    assert first["checks"] and oct(target.stat().st_mode & 0o777) == "0o644"
    assert save(MACHINES / "intel-laptop-gvtg", target).returncode in (0, 1)  # a regular file is replaced
    assert json.loads(target.read_text()) == first
    assert sorted(p.name for p in target.parent.iterdir()) == ["hardware.json"]  # no temporary file left


# ---------------------------------------------------------------------------------------------- vm and run input


def firstboot(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from phyllome_installer.cli import firstboot_main; "
                               "sys.exit(firstboot_main(sys.argv[1:]))", *argv, "--log", "/dev/null"],
        capture_output=True, text=True, check=False, timeout=120, cwd=cwd)


@pytest.fixture
def odd_paths(tmp_path) -> dict[str, str]:
    fifo = tmp_path / "fifo.iso"
    os.mkfifo(fifo)
    (tmp_path / "folder.iso").mkdir()
    return {"fifo": str(fifo), "folder": str(tmp_path / "folder.iso")}


@pytest.mark.parametrize("command", [("vm", "plan"), ("vm", "create", "--dry-run")])
@pytest.mark.parametrize(("option", "value", "message"), [
    ("--iso", "{folder}", "a directory, not an ISO file"),
    ("--iso", "{fifo}", "a FIFO, not an ISO file"),  # a read would block
    ("--iso", "/dev/null", "a character device, not an ISO file"),
    ("--iso", "/no/such.iso", "no such file"),
    ("--disk-size", "99999TiB", "99999 TiB is more than the largest guest disk, 64 TiB"),
    ("--store", "/proc", "is in /proc, /sys or /dev"),
    ("--store", "/sys/kernel", "is in /proc, /sys or /dev"),
    ("--store", "{fifo}", "not a directory"),
])
def test_vm_plan_refuses_what_create_refuses(command, option, value, message, odd_paths):
    result = firstboot(*command, "--os", "debian12", "--uri", "test:///default", option, value.format(**odd_paths))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_relative_iso_path_is_resolved_not_refused_as_relative(tmp_path):
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "not-an-os.iso").write_bytes(b"\0" * 4096)
    result = firstboot("vm", "plan", "--iso", "../media/not-an-os.iso", "--uri", "test:///default",
                       cwd=tmp_path / "media")
    assert "absolute path" not in result.stderr, result.stderr
    assert str(tmp_path / "media" / "not-an-os.iso") in result.stderr  # osinfo's verdict on the file itself


def _host(tmp_path: Path, *, marker: bool = True) -> Path:
    root = tmp_path / "host"
    (root / "etc" / "phyllome").mkdir(parents=True)
    if marker:
        (root / "etc" / "phyllome" / "firstboot").write_text("installed-by=test\n")
    return root


def test_run_on_a_machine_that_is_not_a_phyllome_host_refuses_and_writes_nothing(tmp_path):
    root = tmp_path / "elsewhere"
    root.mkdir()
    result = firstboot("run", "--unattended", "--root", str(root), "--uri", "test:///default")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not an installed Phyllome OS host" in result.stderr and "first boot done" not in result.stdout
    assert list(root.iterdir()) == []


def test_run_with_a_marker_that_is_a_directory_is_bad_input(tmp_path):
    root = _host(tmp_path, marker=False)
    (root / "etc" / "phyllome" / "firstboot").mkdir()
    result = firstboot("run", "--unattended", "--root", str(root), "--uri", "test:///default")
    assert result.returncode == 2 and "is not a regular file" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (root / "var").exists()


def test_run_whose_result_cannot_be_written_fails_cleanly_and_keeps_the_marker(tmp_path):
    root = _host(tmp_path)
    (root / "var" / "lib" / "phyllome" / "firstboot.json").mkdir(parents=True)  # the rename cannot replace it
    answers = tmp_path / "fb.toml"
    answers.write_text("[firstboot]\nenabled = false\n")
    result = firstboot("run", "--unattended", "--answers", str(answers), "--root", str(root), "--uri",
                       "test:///default")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot record the first boot's result" in result.stderr and "Traceback" not in result.stderr
    assert (root / "etc" / "phyllome" / "firstboot").exists()


def test_run_reads_only_firstboot_of_a_whole_answer_file(tmp_path):
    root = _host(tmp_path)
    answers = tmp_path / "answers.toml"
    answers.write_text('version = 1\n\n[storage]\ntarget = "/dev/gone-since-the-install"\n\n'
                       '[storage.encryption]\npassphrase_file = "/media/usb/gone.txt"\n\n'
                       "[firstboot]\nenabled = false\n")
    result = firstboot("run", "--unattended", "--answers", str(answers), "--root", str(root), "--uri",
                       "test:///default")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "first boot done" in result.stdout
    assert json.loads((root / "var" / "lib" / "phyllome" / "firstboot.json").read_text())["ok"] is True
