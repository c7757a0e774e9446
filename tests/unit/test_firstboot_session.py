"""First boot without libvirt or root: the saved [firstboot], the marker rule, kernel-argument fixes, ISOs, the
result file, and the unlock loop's rules (the real unlock is tests/storage/test_unlock.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from firstboot import session as fs
from firstboot.checks import Check
from firstboot.unlock import as_recovery_code, store_mountpoint
from phyllome_installer.answers import FirstBoot, load_firstboot
from phyllome_installer.core.errors import UserError
from phyllome_installer.core.runner import RecordingRunner
from phyllome_installer.hostconfig import HostConfig
from tests.unlockers import ScriptedUnlocker


@pytest.mark.parametrize("enabled", [True, False])
def test_the_installer_saves_firstboot_and_writes_the_marker_only_when_enabled(tmp_path, enabled):
    answers = FirstBoot(enabled=enabled, vm={"iso": "/var/lib/libvirt/isos/win11.iso", "memory": "8GiB"})
    HostConfig(RecordingRunner(), tmp_path).firstboot("1.0", answers)
    assert (tmp_path / "etc/phyllome/firstboot").exists() is enabled
    saved = tmp_path / "etc/phyllome/firstboot.toml"
    assert load_firstboot(saved, tmp_path) == answers
    assert load_firstboot(None, tmp_path) == answers  # the default place is the saved copy under the root


def test_no_saved_firstboot_means_the_defaults_and_bad_values_are_named(tmp_path):
    assert load_firstboot(None, tmp_path) == FirstBoot()
    bad = tmp_path / "fb.toml"
    bad.write_text("[firstboot]\nenabled = true\nunattended = 3\n[firstboot.vm]\nvcpus = 0\n")
    with pytest.raises(UserError) as info:
        load_firstboot(bad, tmp_path)
    assert "firstboot.unattended" in str(info.value) and "firstboot.vm.vcpus" in str(info.value)


@pytest.mark.parametrize("nest", ["[" * 5000 + "]" * 5000, "{a = " * 5000 + "1" + "}" * 5000, "[" * 40])
def test_a_deeply_nested_firstboot_file_is_bad_input_not_a_traceback(tmp_path, nest):
    """The first boot reads TOML through the answer file's nesting guard (loads_guarded), as the installer does."""
    bad = tmp_path / "deep.toml"
    bad.write_text(f"[firstboot]\nenabled = {nest}\n")
    with pytest.raises(UserError, match="nested deeper than 32 levels"):
        load_firstboot(bad, tmp_path)


def test_karg_fixes_are_offered_only_for_what_the_host_can_apply():
    warn = Check("iommu-kernel", "t", "WARN", "0 groups", "add intel_iommu=on iommu=pt to the kernel command line")
    assert fs.karg_fix(warn, "intel") == ["intel_iommu=on", "iommu=pt"]
    assert fs.karg_fix(warn, "amd") == ["amd_iommu=on", "iommu=pt"]
    firmware = Check("iommu-kernel", "t", "WARN", "", "enable the IOMMU in the firmware first")
    assert fs.karg_fix(firmware, "intel") == []
    assert fs.karg_fix(Check("kvm", "t", "FAIL", "", "load kvm"), "intel") == []
    assert fs.karg_command(["a=1"], rpm_ostree=True) == ["rpm-ostree", "kargs", "--append=a=1"]
    assert fs.karg_command(["a=1", "b"], rpm_ostree=False, booted_commit="abc") == [
        "ostree", "admin", "deploy", "--retain", "--karg-proc-cmdline", "--karg-append=a=1", "--karg-append=b", "abc"]
    with pytest.raises(UserError):
        fs.karg_command(["a"], rpm_ostree=False, booted_commit=None)


def test_the_booted_commit_is_read_from_ostree_admin_status():
    runner = RecordingRunner()
    runner.respond(["ostree", "admin", "status"], stdout="  phyllome 1111.1\n* phyllome 2222abc.0\n    origin: x\n")
    assert fs.booted_commit(runner) == "2222abc"


def test_isos_come_from_the_iso_directory_then_removable_media(tmp_path):
    isos = tmp_path / fs.ISO_DIR
    isos.mkdir(parents=True)
    (isos / "win11.iso").write_text("x")
    (isos / "notes.txt").write_text("x")
    usb = tmp_path / "run/media/admin/USB"
    usb.mkdir(parents=True)
    (usb / "Fedora.ISO").write_text("x")
    assert fs.find_isos(tmp_path) == [isos / "win11.iso", usb / "Fedora.ISO"]
    assert fs.find_isos(tmp_path / "nothing") == []


def test_the_marker_is_removed_only_when_everything_succeeded(tmp_path):
    marker = tmp_path / "etc/phyllome/firstboot"
    marker.parent.mkdir(parents=True)
    marker.write_text("")
    failed = fs.Result("screens")
    failed.add("checks", "fine")
    failed.fail("vm", "the dry run failed")
    assert not fs.finish(failed, tmp_path) and marker.exists()
    saved = json.loads((tmp_path / "var/lib/phyllome/firstboot.json").read_text())
    assert saved["failed_step"] == "vm" and not saved["ok"]
    done = fs.Result("screens")
    done.add("vm", "defined")
    assert fs.finish(done, tmp_path) and not marker.exists()
    assert json.loads((tmp_path / "var/lib/phyllome/firstboot.json").read_text())["ok"]


@pytest.mark.parametrize(("typed", "code"), [
    ("ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567", "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567"),
    ("abcd efgh ijkl mnop qrst uvwx yz23 4567", "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567"),
    ("abcdefghijklmnopqrstuvwxyz234567", "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567"),
    ("correct horse battery staple", None), ("ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4568", None)])
def test_recovery_codes_are_recognised_as_typed(typed, code):
    assert as_recovery_code(typed) == code


def test_the_mount_point_is_the_whole_filesystem_not_a_bind_mount(tmp_path):
    dev = os.stat(tmp_path).st_dev
    majmin = f"{os.major(dev)}:{os.minor(dev)}"
    info = tmp_path / "mountinfo"
    info.write_text(f"1 0 {majmin} /ostree/deploy/phyllome/var /var rw - ext4 /dev/x rw\n"
                    f"2 0 {majmin} / /sysroot rw - ext4 /dev/x rw\n9 0 0:99 / /other rw - tmpfs t rw\n")
    assert store_mountpoint(tmp_path, info) == Path("/sysroot")
    info.write_text(f"1 0 {majmin} /sub /var rw - ext4 /dev/x rw\n")
    with pytest.raises(UserError):
        store_mountpoint(tmp_path, info)


def test_on_a_booted_ostree_host_the_mount_point_is_fscrypts_main_mount(tmp_path):
    """/sysroot (the whole filesystem) is mounted below "/" (the deployment, the same filesystem): fscrypt takes "/"
    and finds the metadata through the payload's /.fscrypt -> sysroot/.fscrypt link (seen booting the disk)."""
    dev = os.stat(tmp_path).st_dev
    majmin = f"{os.major(dev)}:{os.minor(dev)}"
    info = tmp_path / "mountinfo"
    info.write_text(f"73 1 {majmin} /ostree/deploy/phyllome/deploy/abc.0 / rw - ext4 /dev/vda3 rw\n"
                    f"68 73 {majmin} / /sysroot ro - ext4 /dev/vda3 rw\n"
                    f"41 73 {majmin} /ostree/deploy/phyllome/var /var rw - ext4 /dev/vda3 rw\n")
    assert store_mountpoint(tmp_path, info, exists=lambda path: path == "/.fscrypt") == Path("/")
    with pytest.raises(UserError):  # a payload without the link
        store_mountpoint(tmp_path, info, exists=lambda path: False)


def _answers(*values):
    it = iter(values)
    return lambda prompt, attempt: next(it)


def test_three_wrong_tries_then_it_stops_asking():
    told: list[str] = []
    unlocker = ScriptedUnlocker("locked", "right")
    outcome = unlocker.run(_answers("a", "b", "c", "right"), told.append)
    assert outcome.state == "failed" and not outcome.ok and outcome.tries == 3
    assert unlocker.tried == ["a", "b", "c"]
    wrong = "Wrong passphrase or recovery code."
    assert told == [f"{wrong} 2 tries left.", f"{wrong} 1 try left.", wrong]


def test_an_empty_answer_skips_and_a_right_one_unlocks():
    assert ScriptedUnlocker("locked", "r").run(_answers(""), print).state == "skipped"
    assert ScriptedUnlocker("locked", "r").run(_answers(None), print).state == "skipped"
    outcome = ScriptedUnlocker("locked", "r").run(_answers("x", "r"), print)
    assert outcome.state == "unlocked" and outcome.tries == 2
    assert ScriptedUnlocker("unlocked", "r").run(_answers(), print).state == "already-unlocked"
    assert ScriptedUnlocker("not-encrypted", "r").run(_answers(), print).ok


class _SessionThatBreaks:
    """A session whose plan raises what no one expected (a bug, a library's own exception): faked, since the
    point is what the unattended run records when the unexpected happens."""

    store = Path("/nonexistent-store")

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def checks(self):
        return []

    def plan(self, request, os_id):
        raise self.exc


def test_an_unexpected_error_in_the_unattended_run_is_recorded_with_the_marker_kept_faked_session(tmp_path):
    from phyllome_installer.cli_firstboot import run_unattended

    (tmp_path / "etc/phyllome").mkdir(parents=True)
    (tmp_path / "etc/phyllome/firstboot").write_text("")
    config = FirstBoot(unattended=True, vm={"name": "desk", "os": "fedora37", "memory": "1GiB"})
    result = fs.Result("unattended")
    run_unattended(_SessionThatBreaks(LookupError("no such thing")), config, result, out=lambda line: None)
    assert not fs.finish(result, tmp_path)  # saved, and the marker stays for the next boot
    saved = json.loads((tmp_path / "var/lib/phyllome/firstboot.json").read_text())
    assert saved["failed_step"] == "plan" and not saved["ok"], saved
    assert saved["error"].startswith("internal error: LookupError: no such thing"), saved
    assert (tmp_path / "etc/phyllome/firstboot").exists()


def test_a_default_network_that_cannot_start_is_a_failure_that_says_what_is_missing_faked_network():
    """The installed host's libvirt without dnsmasq (found by the boot test): libvirt's own error, then what to
    install. The network object is faked: every libvirt driver this machine runs either starts it or has none."""
    import libvirt

    from firstboot import libvirt_backend as lb
    from phyllome_installer.core.errors import InstallFailure

    class Network:
        def autostart(self):
            return True

        def isActive(self):  # noqa: N802 (libvirt's name)
            return False

        def create(self):
            exc = libvirt.libvirtError("virNetworkCreate() failed")
            exc.err = (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_NETWORK,
                       "Unable to find 'dnsmasq' binary in $PATH: No such file or directory", 2, None, None,
                       None, 0, 0)
            raise exc

    class Conn:
        def networkLookupByName(self, name):  # noqa: N802
            return Network()

    backend = lb.Backend(Conn(), RecordingRunner())
    with pytest.raises(InstallFailure) as caught:
        backend.ensure_network()
    assert "default NAT network cannot start: Unable to find 'dnsmasq'" in str(caught.value)
    assert "dnsmasq-base" in caught.value.hint


def test_the_result_is_written_whole_and_never_through_a_link(tmp_path):
    """save_result writes through core/files.write_regular: JSON, mode 0644, no temporary file left; a symlink
    planted at the result's place is refused, not followed."""
    path = fs.save_result(fs.Result(mode="unattended", vm={"name": "desktop"}), tmp_path)
    assert json.loads(path.read_text())["vm"] == {"name": "desktop"} and path.read_text().endswith("}\n")
    assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["firstboot.json"]
    path.unlink()
    (tmp_path / "elsewhere").write_text("keep")
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        fs.save_result(fs.Result(mode="unattended"), tmp_path)
    assert (tmp_path / "elsewhere").read_text() == "keep"


def test_only_what_cannot_be_worked_out_again_is_synced(tmp_path, monkeypatch):
    """The first boot's result is a record (synced before its rename); the hardware profile is written again by
    every check (not synced), and a torn or empty one reads as none. Both are still written whole."""
    from firstboot import state

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    fs.save_result(fs.Result(mode="unattended"), tmp_path)
    assert len(synced) == 1
    profile = state.save_profile({"checks": []}, tmp_path / "hardware.json")
    assert len(synced) == 1 and state.load_profile(profile) == {"checks": []}
    for torn in ("", '{"checks": [', "\0" * 64):
        profile.write_text(torn)
        assert state.load_profile(profile) is None


def test_a_disk_libvirt_cannot_create_is_a_failure_that_says_what_is_missing_faked_pool(tmp_path):
    """The installed host's libvirt without qemu-img (found by the boot test): faked pool, since this machine's
    libvirt has qemu-img."""
    import libvirt

    from firstboot import libvirt_backend as lb
    from firstboot.spec import VmSpec
    from phyllome_installer.core.errors import InstallFailure

    class Pool:
        def refresh(self, flags):
            pass

        def listVolumes(self):  # noqa: N802 (libvirt's name)
            return []

        def createXML(self, xml, flags):  # noqa: N802
            exc = libvirt.libvirtError("virStorageVolCreateXML() failed")
            exc.err = (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_STORAGE, "internal error: creation of "
                       "non-raw file images is not supported without qemu-img.", 2, None, None, None, 0, 0)
            raise exc

    spec = VmSpec.model_construct(disk=str(tmp_path / "desktop.qcow2"), disk_size=1 << 30, disk_format="qcow2")
    with pytest.raises(InstallFailure) as caught:
        lb.Backend(object(), RecordingRunner()).create_volume(spec, Pool())
    assert "desktop.qcow2 cannot be created: internal error: creation of non-raw" in str(caught.value)
    assert "qemu-utils" in caught.value.hint
