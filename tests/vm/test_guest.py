"""F2FS and fscrypt on a real kernel inside a QEMU guest (marker vm). The whole unattended F2FS install is proven
by the ISO tier (tests/iso), from the live medium."""

from __future__ import annotations

import pytest

from firstboot import kvm
from phyllome_installer.core.runner import SubprocessRunner
from tests.vm import harness

pytestmark = [pytest.mark.vm, pytest.mark.root]


def test_the_products_kvm_verdict_agrees_with_a_kernel_booted_under_kvm():
    """The probe guest of firstboot/kvm.py (what the checks and the VM's domain type use) against the harness's
    proof, a real kernel reaching its init under KVM: on each kind of machine (no /dev/kvm, a working KVM, a KVM
    that cannot run a vCPU) they must agree."""
    kernel = harness.fetch_kernel()
    booted = harness.boots_under_kvm(kernel, harness.build_initramfs(kernel))
    verdict = kvm.probe(SubprocessRunner())
    assert verdict.runs == booted, verdict


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

