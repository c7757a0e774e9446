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


def test_leftover_binds_of_the_running_system_never_stop_its_processes(tmp_path):
    """After a kill -9 in the boot loader task, /dev, /proc and /sys are still bound into the deployment: fuser -k
    on them would kill every process of the live system. Only the target's own filesystems have their users
    stopped; everything under the sysroot is unmounted, innermost first."""
    from phyllome_installer import leftovers
    from phyllome_installer.core.runner import RecordingRunner

    sysroot = tmp_path / "sysroot"
    deploy = f"{sysroot}/ostree/deploy/phyllome/deploy/abc.0"
    path = tmp_path / "mountinfo"
    path.write_text(
        "20 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "21 20 0:5 / /dev rw - devtmpfs udev rw\n"
        "22 20 0:22 / /proc rw - proc proc rw\n"
        "23 20 0:21 / /sys rw - sysfs sysfs rw\n"
        f"30 20 259:3 / {sysroot} rw - ext4 /dev/loop0p3 rw\n"
        f"31 30 259:2 / {sysroot}/boot rw - ext4 /dev/loop0p2 rw\n"
        f"32 30 0:50 / {sysroot}/boot/efi rw - fuse /dev/loop0p1 rw\n"
        f"33 30 0:5 / {deploy}/dev rw - devtmpfs udev rw\n"
        f"34 30 0:22 / {deploy}/proc rw - proc proc rw\n"
        f"35 30 0:21 / {deploy}/sys rw - sysfs sysfs rw\n"
        f"36 30 259:2 / {deploy}/boot rw - ext4 /dev/loop0p2 rw\n")
    runner = RecordingRunner()
    leftovers.clean_mounts(runner, sysroot, path)
    killed = [argv[-1] for argv in runner.argvs if argv[0] == "fuser"]
    unmounted = [argv[-1] for argv in runner.argvs if argv[0] == "umount"]
    assert killed == [f"{deploy}/boot", f"{sysroot}/boot/efi", f"{sysroot}/boot", str(sysroot)]
    assert unmounted == [f"{deploy}/boot", f"{deploy}/sys", f"{deploy}/proc", f"{deploy}/dev",
                         f"{sysroot}/boot/efi", f"{sysroot}/boot", str(sysroot)]
