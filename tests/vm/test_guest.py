"""F2FS and fscrypt on a real kernel, and a whole unattended install, inside a QEMU guest (marker vm)."""

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


ANSWERS = """version = 1
[storage]
disk = "/dev/vda"
wipe = "/dev/vda"
root_fs = "f2fs"
[storage.encryption]
passphrase = "guest install passphrase"
[payload]
kind = "local"
repo = "{repo}"
ref = "{ref}"
[host]
hostname = "vm-guest"
timezone = "Europe/Paris"
[[users]]
name = "admin"
password = "a long enough password"
[post]
action = "none"
"""


def test_unattended_install_with_f2fs_in_a_real_kernel(guest, tmp_path):
    from phyllome_installer.core.runner import SubprocessRunner
    from phyllome_installer.sandbox import REF, Sandbox
    from tests.vm import harness

    payload = Sandbox(harness.CACHE / "payload")  # built here, read by the guest over 9p
    payload.ensure_payload(SubprocessRunner())
    answers = harness.CACHE / "answers-install.toml"
    answers.write_text(ANSWERS.format(repo=payload.repo, ref=REF))
    run, result = guest("tests.vm.guest_install", tmp_path, str(answers))
    assert run.rc == 0 and result is not None, explain(run)
    assert result["install_rc"] == 0, result["install_tail"] + explain(run)
    assert "encrypt" in result["f2fs_features"]
    assert "phyllome" in result["ostree_status"] and "origin refspec: " + REF in result["ostree_status"]
    assert f"root=UUID={result['root_uuid']}" in result["bls_options"] and "iommu=pt" in result["bls_options"]
    assert "Unlocked: No" in result["fscrypt_status"], result["fscrypt_status"]
    assert result["hostname"] == "vm-guest"
