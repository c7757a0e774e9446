"""F2FS and fscrypt on a real kernel inside a QEMU guest (marker vm). The whole unattended F2FS install is proven
by the ISO tier (tests/iso), from the live medium."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.vm, pytest.mark.root]


def explain(run) -> str:
    return f"guest exit {run.rc}\n--- guest log ---\n{run.guest_log[-6000:]}\n--- console ---\n{run.console[-2000:]}"


def test_f2fs_layout_and_fscrypt_store_in_a_real_kernel(guest, tmp_path):
    run, result = guest("tests.vm.guest_storage", tmp_path)
    assert run.rc == 0 and result is not None, explain(run)
    assert result["disk_flags"] == {}
    for feature in ("encrypt", "extra_attr", "inode_checksum", "sb_checksum"):
        assert feature in result["f2fs_features"], result["f2fs_features"]
    assert result["fsck_rc"] == 0
    assert result["mounted_types"] == ["f2fs", "ext4", "vfat"]
    assert result["locked_names"] and "win11.qcow2" not in result["locked_names"]
    assert result["locked_read"] == "ENOKEY"
    assert result["read_after_passphrase"] == result["read_after_recovery"] == "guest disk"
    assert result["status_locked"] is True and result["lazy_unmounts"] == []

