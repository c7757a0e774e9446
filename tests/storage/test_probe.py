"""The probe against real loop devices (root tier)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from phyllome_installer.core.runner import SubprocessRunner
from storage.probe import Prober
from storage.sizes import MIN_DISK_BYTES
from tests.loopdev import loop_image, mounted, sh

pytestmark = pytest.mark.root

LAYOUT = "label: gpt\nsize=600MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=EFI\n,\n"


@pytest.fixture
def disk(tmp_path):
    with loop_image(tmp_path / "disk.img", "12G", LAYOUT) as device:
        sh("mkfs.vfat", "-n", "ESP", device + "p1")
        sh("mmd", "-i", device + "p1", "::/EFI", "::/EFI/Microsoft", "::/EFI/BOOT")
        sh("mkfs.ext4", "-q", "-L", "fedora", device + "p2")
        with mounted(device + "p2", tmp_path / "os") as root:
            (root / "etc").mkdir()
            (root / "etc" / "os-release").write_text('NAME="Fedora Linux"\nPRETTY_NAME="Fedora Linux 40"\n')
        yield device


def probe(device):
    profile = Prober(SubprocessRunner(), include_loop=True, only=[device]).profile()
    assert [d.path for d in profile.disks] == [device]
    return profile.disks[0]


def test_loop_disk_with_partitions(disk, tmp_path):
    found = probe(disk)
    assert found.size == 12 << 30 and found.transport == "loop" and found.table == "gpt"
    assert found.model == "Loop device (disk.img)"
    esp, root = found.partitions
    assert (esp.number, esp.fstype, esp.label, esp.part_type) == (1, "vfat", "ESP",
                                                                  "C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
    assert esp.size == 600 << 20 and esp.part_label == "EFI"
    assert (root.number, root.fstype, root.label) == (2, "ext4", "fedora")
    assert found.os == ["Windows", "Fedora Linux 40"]
    assert found.usable and found.flags == {}


def test_a_mounted_partition_makes_the_disk_busy(disk, tmp_path):
    with mounted(disk + "p2", tmp_path / "m"):
        found = probe(disk)
        assert found.flags == {"busy": f"{disk[5:]}p2 is mounted on {tmp_path / 'm'}"}
        assert found.partitions[1].mountpoint == str(tmp_path / "m")
    assert probe(disk).usable


def test_small_and_read_only_disks_are_flagged(tmp_path):
    with loop_image(tmp_path / "small.img", "1G") as device:
        found = probe(device)
        assert "too_small" in found.flags and found.size < MIN_DISK_BYTES
    (tmp_path / "ro.img").write_bytes(b"")
    sh("truncate", "-s", "11G", str(tmp_path / "ro.img"))
    device = sh("losetup", "--find", "--show", "--read-only", str(tmp_path / "ro.img")).strip()
    try:
        assert probe(device).flags == {"read_only": "the disk is read-only"}
    finally:
        sh("losetup", "-d", device)


def test_the_running_system_disk_is_the_boot_medium():
    profile = Prober(SubprocessRunner()).profile()
    root_disks = [d for d in profile.disks if "boot_medium" in d.flags]
    assert root_disks, "the disk holding / must be flagged"
    assert "mounted on /" in root_disks[0].flags["boot_medium"]


def test_loop_devices_are_disks_only_when_asked(disk):
    assert disk not in [d.path for d in Prober(SubprocessRunner()).disks()]


def test_probe_json_lists_the_loop_disks(disk, tmp_path):
    out = subprocess.run([sys.executable, "-m", "phyllome_installer.cli", "probe", "--json", "--include-loop",
                          "--log", str(tmp_path / "log")], capture_output=True, text=True, check=True)
    profile = json.loads(out.stdout)
    mine = [d for d in profile["disks"] if d["path"] == disk]
    assert len(mine) == 1 and mine[0]["size"] == 12 << 30 and len(mine[0]["partitions"]) == 2
    assert profile["cpu_vendor"] in ("intel", "amd", "other") and profile["ram_bytes"] > 0
