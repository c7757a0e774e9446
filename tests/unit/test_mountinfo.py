"""mountinfo read in one place (phyllome_installer/core/mountinfo.py): escapes, optional fields, binds."""

from __future__ import annotations

from phyllome_installer.core import mountinfo

TEXT = (
    "22 1 8:3 / / rw,relatime shared:1 - ext4 /dev/sda3 rw\n"
    "40 22 8:3 /ostree/deploy/phyllome/var /var rw shared:2 master:1 - ext4 /dev/sda3 rw\n"
    "41 22 7:1 / /mnt/with\\040space\\011tab rw - vfat /dev/loop1p1 rw\n"
    "42 22 0:45 / /run/user/0 rw,nosuid - tmpfs tmpfs rw\n"
    "43 22 0:46 / /mnt/back\\134slash rw - fuse /dev/loop2\\040p1 rw\n"
    "garbage line\n"
    "44 22 8:1 / /short rw -\n"
)


def test_fields_escapes_and_optional_fields():
    mounts = mountinfo.parse(TEXT)
    assert [m.point for m in mounts] == ["/", "/var", "/mnt/with space\ttab", "/run/user/0", "/mnt/back\\slash"]
    var = mounts[1]
    assert (var.device, var.root, var.fstype, var.source) == ("8:3", "/ostree/deploy/phyllome/var", "ext4",
                                                             "/dev/sda3")
    assert mounts[4].source == "/dev/loop2 p1"


def test_an_unreadable_table_is_empty(tmp_path):
    assert mountinfo.read(tmp_path / "missing") == []
    path = tmp_path / "mountinfo"
    path.write_text(TEXT)
    assert len(mountinfo.read(path)) == 5


def test_the_users_of_the_table_agree(tmp_path):
    from phyllome_installer import leftovers
    from storage.apply import mount_points

    path = tmp_path / "mountinfo"
    path.write_text(TEXT)
    points = [m.point for m in mountinfo.parse(TEXT)]
    assert mount_points(path) == set(points)
    assert [where for _, where, _ in leftovers.mounts(path)] == points
