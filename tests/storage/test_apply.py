"""Apply the real layout to a loop disk with blivet, and verify it with the real tools (root tier)."""

from __future__ import annotations

import json
import subprocess

import pytest

from phyllome_installer.core.errors import UserError
from phyllome_installer.core.progress import TaskProgress
from phyllome_installer.core.runner import SubprocessRunner
from phyllome_installer.core.sinks import ListSink
from phyllome_installer.sandbox import fat_driver
from storage import layout
from storage.apply import BlivetApplier, TargetMounts, recheck
from storage.probe import Prober
from tests.loopdev import mounted, sh

pytestmark = pytest.mark.root
MiB = 1 << 20


def probe(device):
    return Prober(SubprocessRunner(), include_loop=True, only=[device]).disks()[0]


def apply(device, **options):
    disk = probe(device)
    plan = layout.plan(disk.path, disk.size, **options)
    sink = ListSink()
    return plan, BlivetApplier(SubprocessRunner(), sink, include_loop=True).apply(plan, disk), sink


@pytest.mark.parametrize("root_fs", ["f2fs", "ext4"])
def test_layout_is_applied_and_verified_with_sfdisk_and_blkid(target, root_fs):
    sh("mkfs.ext4", "-q", "-L", "OLDDATA", target)  # something to erase
    plan, applied, sink = apply(target, root_fs=root_fs)
    table = json.loads(sh("sfdisk", "-J", target))["partitiontable"]
    assert table["label"] == "gpt"
    got = [(p["start"] * 512, p["size"] * 512, p["type"], p["name"]) for p in table["partitions"]]
    assert got == [(MiB, 600 * MiB, layout.ESP_TYPE, "EFI System"),
                   (601 * MiB, 1024 * MiB, layout.LINUX_DATA_TYPE, "boot"),
                   (1625 * MiB, plan.part("root").size, layout.ROOT_X86_64_TYPE, "root")]
    for role, fstype, label in (("esp", "vfat", "ESP"), ("boot", "ext4", "boot"), ("root", root_fs, "root")):
        info = sh("blkid", "-p", "-o", "export", applied.devices[role])
        assert f"TYPE={fstype}\n" in info and f"LABEL={label}\n" in info
        assert f"UUID={applied.uuids[role]}\n" in info
    assert "OLDDATA" not in subprocess.run(["blkid", "-p", "-o", "export", target], capture_output=True,
                                           text=True, check=False).stdout
    assert any(isinstance(e, TaskProgress) and e.fraction == 1.0 for e in sink.events)


def test_f2fs_root_passes_fsck_and_has_the_encrypt_feature(target):
    _, applied, _ = apply(target, compression=True)
    dump = sh("dump.f2fs", applied.devices["root"])
    features = next(line for line in dump.splitlines() if "superblock features" in line)
    for feature in ("encrypt", "extra_attr", "inode_checksum", "sb_checksum", "compression"):
        assert feature in features
    fsck = subprocess.run(["fsck.f2fs", applied.devices["root"]], capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_a_busy_target_is_refused_before_anything_is_written(target, tmp_path):
    sh("sfdisk", "--quiet", target, stdin="label: gpt\n,\n")
    sh("partx", "-u", target)
    sh("mkfs.ext4", "-q", target + "p1")
    disk = probe(target)
    before = sh("sfdisk", "-J", target)
    with mounted(target + "p1", tmp_path / "m"):
        with pytest.raises(UserError, match=r"cannot be the target: .*p1 is mounted on"):
            BlivetApplier(SubprocessRunner(), include_loop=True).apply(layout.plan(target, disk.size), disk)
    assert sh("sfdisk", "-J", target) == before


def test_a_disk_that_changed_since_it_was_chosen_is_refused(target, tmp_path):
    disk = probe(target)
    sh("truncate", "-s", "13G", str(tmp_path / "target.img"))
    sh("losetup", "-c", target)
    with pytest.raises(UserError, match="changed since it was chosen"):
        recheck(Prober(SubprocessRunner(), include_loop=True, only=[target]), disk)


def test_the_boot_medium_is_refused():
    system = [d for d in Prober(SubprocessRunner()).disks() if "boot_medium" in d.flags][0]
    with pytest.raises(UserError, match="holds the running system"):
        recheck(Prober(SubprocessRunner(), only=[system.path]), system)


def test_mount_tree_and_unmount_in_reverse(target, tmp_path):
    plan, applied, _ = apply(target, root_fs="ext4")
    driver = fat_driver()  # this kind of machine's kernel has no vfat: the ESP goes through fusefat
    assert driver is not None
    mounts = TargetMounts(SubprocessRunner(), tmp_path / "sysroot", fat_driver=driver)
    mounts.mount_layout(plan, applied)
    lines = [line.split()[1] for line in open("/proc/mounts") if line.startswith(target)]
    root = str(tmp_path / "sysroot")
    assert lines == [root, root + "/boot", root + "/boot/efi"]
    (tmp_path / "sysroot/boot/efi/written-through-the-mount").write_text("x")
    assert mounts.unmount_all() == []
    assert not [line for line in open("/proc/mounts") if line.startswith(target)]
    assert "written-through-the-mount" in sh("mdir", "-b", "-i", applied.devices["esp"], "::/")
