"""Whether KVM runs a guest: the probe guest run by real QEMU, and the one verdict behind the checks and the VM.

The three kinds of machine this suite runs on (/dev/kvm absent; present and working; present and unable to run a
vCPU) are each decided here. This machine cannot run KVM guests, so a working accelerator is stood for by TCG,
which runs the same firmware in the same QEMU (the test names say so); SMM refused by the hypervisor is stood for
by a wrapper around the real QEMU that refuses it with QEMU's own message.
"""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from firstboot import host as hostfacts
from firstboot import kvm
from firstboot.checks import Machine, kvm_device
from firstboot.osinfo import Catalogue
from firstboot.vm import Request, plan
from phyllome_installer.core.errors import UserError
from phyllome_installer.core.runner import RecordingRunner, SubprocessRunner

DATA = Path(__file__).resolve().parents[1] / "data"
GiB = 1 << 30


def _run_rom(tmp_path: Path, rom: bytes, timeout: float = 5.0) -> kvm.Verdict:
    image = tmp_path / "rom"
    image.write_bytes(rom)
    return kvm._run(SubprocessRunner(), "qemu-system-x86_64", image, accel="tcg", cpu="max", smm=False,
                    timeout=timeout)


def test_the_probe_guest_runs_and_reports_under_tcg_standing_in_for_a_working_kvm():
    verdict = kvm.probe(SubprocessRunner(), accel="tcg", cpu="max")
    assert verdict == kvm.Verdict(True, True, "")


def test_a_guest_that_never_reports_is_a_vcpu_that_does_not_run(tmp_path):
    verdict = _run_rom(tmp_path, b"\xf4" * 0x10000, timeout=1)  # halts at the reset vector, as a stuck vCPU
    assert not verdict.runs and "did not run within 1 s" in verdict.reason and not verdict.lasting


def test_a_guest_whose_ram_check_fails_is_no_proof(tmp_path):
    rom = bytearray(kvm.firmware())
    rom[0x3E + 1] = 0x15  # report 0x15 (the failure value) on the success path
    verdict = _run_rom(tmp_path, bytes(rom))
    assert not verdict.runs and "exit status 43" in verdict.reason and verdict.lasting


def test_the_firmware_is_64_kib_with_the_reset_vector_in_its_last_16_bytes():
    rom = kvm.firmware()
    assert len(rom) == 0x10000 and rom[0xFFF0:0xFFF3] == bytes.fromhex("e90d00")


def test_an_absent_dev_kvm_runs_nothing(tmp_path):
    runner = RecordingRunner()
    verdict = kvm.probe(runner, dev=tmp_path / "kvm")
    assert not verdict.runs and "is missing" in verdict.reason and runner.argvs == []


def test_a_dev_kvm_that_cannot_be_opened_runs_nothing(tmp_path):
    (tmp_path / "dir").mkdir()  # a node that is there but cannot be opened as a device
    runner = RecordingRunner()
    verdict = kvm.probe(runner, dev=tmp_path / "dir")
    assert not verdict.runs and verdict.reason.startswith("cannot open") and runner.argvs == []


def _smm_refusing_qemu(tmp_path: Path) -> str:
    """The real QEMU, except that SMM is refused with the message QEMU prints on such nested KVM hosts."""
    wrapper = tmp_path / "qemu-without-smm"
    wrapper.write_text('#!/bin/sh\ncase "$*" in *smm=on*) echo "qemu-system-x86_64: System Management Mode not '
                       'supported by this hypervisor." >&2; exit 1;; esac\nexec qemu-system-x86_64 "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_smm_refused_by_an_emulated_hypervisor_is_runs_without_smm(tmp_path):
    verdict = kvm.probe(SubprocessRunner(), emulator=_smm_refusing_qemu(tmp_path), accel="tcg", cpu="max")
    assert verdict.runs and not verdict.smm and "SMM" in verdict.reason


def test_a_missing_qemu_is_a_reason_not_a_crash(tmp_path):
    verdict = kvm.probe(SubprocessRunner(), emulator=str(tmp_path / "no-qemu"), accel="tcg")
    assert not verdict.runs and "cannot run" in verdict.reason


@pytest.mark.parametrize(("types", "verdict", "expected"), [
    (["qemu"], None, ("qemu", True)),                                              # /dev/kvm absent
    (["qemu", "kvm"], kvm.Verdict(True, True), ("kvm", True)),                     # KVM works
    (["qemu", "kvm"], kvm.Verdict(False, False, "vCPU never ran"), ("qemu", True)),  # present, cannot run
    (["qemu", "kvm"], kvm.Verdict(True, False, "no SMM"), ("kvm", False)),         # runs, without SMM
])
def test_the_domain_type_follows_the_verdict_on_each_kind_of_machine(types, verdict, expected):
    domain_type, smm, note = hostfacts.accelerator(types, verdict)
    assert (domain_type, smm) == expected
    assert bool(note) == (verdict is None or not (verdict.runs and verdict.smm))


def _host(domain_type: str, smm: bool) -> hostfacts.HostFacts:
    domcaps = (DATA / "libvirt/domcaps-qemu-q35.xml").read_text()
    facts = hostfacts.parse((DATA / "libvirt/capabilities.xml").read_text(), domcaps, libvirt_version=9000000,
                            domain_type=ET.fromstring(domcaps).findtext("domain"))
    return facts.model_copy(update={"memory": 32 * GiB, "cpus": 8, "domain_type": domain_type, "smm": smm,
                                    "accelerator_note": "" if smm else "kvm runs guests but cannot give them SMM"})


def test_a_secure_boot_plan_on_kvm_without_smm_is_refused_with_the_reason(tmp_path):
    catalogue = Catalogue()
    request = Request(store=str(tmp_path), iso="/srv/win11.iso")
    with pytest.raises(UserError, match="needs SMM.*cannot give them SMM.*nothing was created"):
        plan(request, catalogue.lookup("win11"), _host("kvm", smm=False))
    assert plan(request, catalogue.lookup("win11"), _host("kvm", smm=True)).secure_boot
    # a guest without Secure Boot does not need SMM
    assert not plan(request, catalogue.lookup("fedora37"), _host("kvm", smm=False)).secure_boot


def _tree(tmp_path: Path, kvm_capture: dict) -> Machine:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/kvm").touch()
    (tmp_path / "phyllome-capture.json").write_text(json.dumps({"kvm": kvm_capture}))
    return Machine(tmp_path)


@pytest.mark.parametrize(("capture", "status"), [
    ({"exists": True, "api_version": 12, "create_vm": True, "runs": False, "smm": False,
      "run_error": "a test guest did not run within 5 s under kvm"}, "FAIL"),
    ({"exists": True, "api_version": 12, "create_vm": True, "runs": True, "smm": False}, "WARN"),
    ({"exists": True, "api_version": 12, "create_vm": True, "runs": True, "smm": True}, "PASS"),
])
def test_the_kvm_check_says_what_the_probe_guest_showed(tmp_path, capture, status):
    check = kvm_device(_tree(tmp_path, capture))
    assert check.status == status
    if status == "FAIL":
        assert "did not run" in check.found


def test_the_live_check_and_the_vm_ask_the_same_probe(monkeypatch):
    """On the live root the check runs the injected probe (here: one that says the vCPU never ran)."""
    if not os.path.exists("/dev/kvm") or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("this machine has no usable /dev/kvm node to open")
    asked = []

    def never_runs(dev: Path) -> kvm.Verdict:
        asked.append(dev)
        return kvm.Verdict(False, False, "a test guest did not run within 5 s under kvm")

    info = Machine(Path("/"), kvm_probe=never_runs).kvm()
    if not info.get("create_vm"):
        pytest.skip("KVM_CREATE_VM fails here: the check fails before any guest is run")
    assert asked == [Path("/dev/kvm")] and info["runs"] is False


class CountingRunner(SubprocessRunner):
    """The real runner, counting the QEMU processes it starts."""

    def __init__(self) -> None:
        super().__init__()
        self.started = 0

    def run(self, argv, **kwargs):
        self.started += 1
        return super().run(argv, **kwargs)


@pytest.fixture
def boot(tmp_path, monkeypatch):
    """A boot of our own: its id in a file, the in-process memo empty, the cache under tmp_path."""
    monkeypatch.setattr(kvm, "_verdicts", {})
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("5f1c2b1e-0000-4000-8000-000000000001\n")
    return boot_id, tmp_path / "run/phyllome/kvm-verdicts.json"


def _probe(runner, boot, **kwargs):
    boot_id, cache = boot
    return kvm.probe_once(runner, cache=cache, boot_id=boot_id, accel="tcg", cpu="max", **kwargs)


def test_the_verdict_is_kept_for_the_boot_and_a_second_process_starts_no_qemu(boot, monkeypatch):
    first = CountingRunner()
    verdict = _probe(first, boot)
    assert verdict == kvm.Verdict(True, True, "") and first.started == 1
    monkeypatch.setattr(kvm, "_verdicts", {})  # the next process (check, then the first boot)
    again = CountingRunner()
    assert _probe(again, boot) == verdict and again.started == 0
    assert oct(boot[1].stat().st_mode & 0o777) == "0o644"


def test_a_new_boot_a_replaced_emulator_or_device_node_probes_again(boot, tmp_path, monkeypatch):
    boot_id, cache = boot
    emulator, node = tmp_path / "qemu", tmp_path / "kvm-node"
    node.write_text("")

    def install_qemu(version: str) -> None:  # a new file in place, as a package upgrade does
        (tmp_path / "qemu.new").write_text(f'#!/bin/sh\n# {version}\nexec qemu-system-x86_64 "$@"\n')
        (tmp_path / "qemu.new").chmod(0o755)
        (tmp_path / "qemu.new").rename(emulator)

    install_qemu("8.2")
    runner = CountingRunner()
    kwargs = {"emulator": str(emulator), "dev": node}
    _probe(runner, boot, **kwargs)
    for change in (lambda: boot_id.write_text("5f1c2b1e-0000-4000-8000-000000000002\n"),  # rebooted
                   lambda: (node.unlink(), node.write_text("")),  # the module reloaded: a new node
                   lambda: install_qemu("9.0")):
        monkeypatch.setattr(kvm, "_verdicts", {})
        before = runner.started
        change()
        _probe(runner, boot, **kwargs)
        assert runner.started == before + 1
    old_boot = [key for key in json.loads(cache.read_text()) if "000000000001" in key]
    assert old_boot == []  # verdicts of an earlier boot are dropped, not piled up


@pytest.mark.parametrize("planted", [
    "not json", "[1, 2]", '{"x": {"runs": true}}', "{" + '"a": 1, ' * 5000 + '"b": 2}', "[" * 16000,
], ids=["text", "a list", "no verdict", "over the cap", "nested deeper than Python goes"])
def test_a_cache_that_is_not_ours_or_not_a_verdict_is_ignored(boot, planted, monkeypatch):
    boot_id, cache = boot
    cache.parent.mkdir(parents=True)
    cache.write_text(planted)
    runner = CountingRunner()
    assert _probe(runner, boot).runs and runner.started == 1
    monkeypatch.setattr(kvm, "_verdicts", {})
    # A verdict that says KVM runs, written by someone who may not (group-writable, or a link): never believed.
    key = kvm.cache_key(kvm.arguments({"accel": "tcg", "cpu": "max"}), boot_id)
    cache.write_text(json.dumps({key: {"runs": False, "smm": False, "reason": "planted"}}))
    cache.chmod(0o666)
    runner = CountingRunner()
    assert _probe(runner, boot).reason != "planted" and runner.started == 1


def test_without_a_boot_id_nothing_is_kept(boot, tmp_path):
    boot_id, cache = boot
    boot_id.unlink()
    runner = CountingRunner()
    assert _probe(runner, (boot_id, cache)).runs and not cache.exists()


def test_a_guest_that_did_not_report_in_time_is_asked_again_never_kept(boot, tmp_path):
    """A timeout can be chance on a busy machine: kept, it would define the VM as TCG for good. Stood for by a
    wrapper around the real QEMU that never lets the guest report (it sleeps past the deadline)."""
    hanging = tmp_path / "qemu-hangs"
    hanging.write_text("#!/bin/sh\nexec sleep 30\n")
    hanging.chmod(0o755)
    runner = CountingRunner()
    for expected in (1, 2):
        verdict = _probe(runner, boot, emulator=str(hanging), timeout=0.5)
        assert not verdict.runs and not verdict.lasting and "did not run within" in verdict.reason
        assert runner.started == expected
    assert not boot[1].exists()


def test_the_checks_and_the_vm_plan_share_one_verdict(boot):
    """The checks name only the device; the plan names the emulator libvirt reports, by its full path."""
    runner = CountingRunner()
    first = _probe(runner, boot, dev=Path("/dev/null"))
    again = _probe(runner, boot, dev=Path("/dev/null"), emulator=shutil.which("qemu-system-x86_64"))
    assert first == again and runner.started == 1
