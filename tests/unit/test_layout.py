from __future__ import annotations

import pytest

from phyllome_installer.core.errors import UserError
from storage import layout
from storage.probe import Disk, Partition

GiB, MiB = 1 << 30, 1 << 20


def test_layout_of_a_1tb_disk_is_aligned_and_typed():
    plan = layout.plan("/dev/nvme0n1", 1_000_204_886_016)
    esp, boot, root = plan.partitions
    assert (esp.start, esp.size, esp.fstype, esp.type_guid) == (MiB, 600 * MiB, "vfat",
                                                                "C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
    assert (boot.start, boot.size, boot.fstype, boot.type_guid) == (601 * MiB, GiB, "ext4",
                                                                    "0FC63DAF-8483-4772-8E79-3D69D8477DE4")
    assert root.type_guid == "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" and root.start == 1625 * MiB
    assert root.mkfs_options == ("-O", "extra_attr,inode_checksum,sb_checksum,encrypt")
    for part in plan.partitions:
        assert part.start % MiB == 0 and part.size % MiB == 0
    assert root.end <= 1_000_204_886_016 - 33 * 512
    assert 1_000_204_886_016 - root.end < 2 * MiB  # the rest of the disk goes to root


def test_compression_and_ext4():
    assert layout.plan("/dev/x", 20 * GiB, compression=True).part("root").mkfs_options[1].endswith(",compression")
    ext4 = layout.plan("/dev/x", 20 * GiB, root_fs="ext4").part("root")
    assert (ext4.fstype, ext4.mkfs_options) == ("ext4", ("-O", "encrypt"))
    with pytest.raises(UserError, match="compression needs the f2fs"):
        layout.plan("/dev/x", 20 * GiB, root_fs="ext4", compression=True)


def test_too_small_disk_is_a_clear_error():
    assert layout.minimum_disk_size() == 2 * MiB + 600 * MiB + GiB + 8 * GiB
    layout.plan("/dev/x", layout.minimum_disk_size())
    with pytest.raises(UserError, match=r"/dev/x is 8.0 GiB; Phyllome OS needs at least 9.6 GiB"):
        layout.plan("/dev/x", 8 * GiB)


def test_before_after_table_names_what_is_erased():
    before = Disk(path="/dev/sda", name="sda", model="WD Blue", serial="WX1", size=500 * GiB, table="gpt",
                  os=["Windows"],
                  partitions=[Partition(number=1, path="/dev/sda1", size=100 * MiB, fstype="vfat", label="SYSTEM"),
                              Partition(number=2, path="/dev/sda2", size=400 * GiB, fstype="ntfs")])
    text = "\n".join(layout.before_after(before, layout.plan("/dev/sda", 500 * GiB)))
    assert "gpt table on /dev/sda, WD Blue, 500.0 GiB, serial WX1" in text
    assert "  2   400.0 GiB  ntfs  ERASED" in text and "holds: Windows (will be erased)" in text
    assert "\n  3  root         498.4 GiB  f2fs  /          -O extra_attr,inode_checksum,sb_checksum,encrypt" in text
    empty = layout.before_after(None, layout.plan("/dev/sda", 500 * GiB))
    assert empty[1] == "  (empty: no partition table)"
