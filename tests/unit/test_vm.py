"""The primary VM as data: osinfo profiles, the sizing rule, and domain XML as golden files (virt-xml-validate).

Real osinfo-db through libosinfo; the host is this CI machine's own libvirt capabilities (tests/data/libvirt/),
resized to a typical desktop so the sizing rule has room. Regenerate the golden files with
PHYLLOME_REGEN_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import get_args

import pytest

from firstboot import host as hostfacts
from firstboot.checks import Machine
from firstboot.gpu import analyse
from firstboot.osinfo import Catalogue
from firstboot.primary import virtual_functions
from firstboot.vm import STRATEGIES, Request, domain_xml, plan
from phyllome_installer.answers import PrimaryVm
from phyllome_installer.core.errors import UserError

DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN = DATA / "vm"
MACHINES = DATA / "machines"
GiB = 1 << 30


@pytest.fixture(scope="module")
def catalogue():
    return Catalogue()


def _host(**changes) -> hostfacts.HostFacts:
    domcaps = (DATA / "libvirt/domcaps-qemu-q35.xml").read_text()
    facts = hostfacts.parse((DATA / "libvirt/capabilities.xml").read_text(), domcaps, libvirt_version=9000000,
                            domain_type=ET.fromstring(domcaps).findtext("domain"))
    return facts.model_copy(update={"memory": 32 * GiB, "cpus": 8, "threads_per_core": 2} | changes)


CASES = {
    # guest families (no host GPU: 2D virtio-gpu)
    "win11": ("win11", "this-ci-vm", {"iso": "/srv/isos/Win11_23H2.iso"},
              {"virtio_win": "/usr/share/virtio-win/virtio-win.iso"}),
    "win10": ("win10", "this-ci-vm", {"iso": "/srv/isos/Win10_22H2.iso"}, {}),
    "fedora37": ("fedora37", "this-ci-vm", {"iso": "/srv/isos/Fedora-Workstation-Live-x86_64-37.iso"}, {}),
    "ubuntu22.04": ("ubuntu22.04", "this-ci-vm", {"iso": "/srv/isos/ubuntu-22.04-desktop-amd64.iso"}, {}),
    "linux-generic": ("linux2022", "this-ci-vm", {}, {"network": False}),
    # GPU strategies
    "gpu-virtio-gpu-3d": ("fedora37", "amd-desktop-isolated-dgpu", {"gpu": "virtio-gpu-3d"}, {}),
    "gpu-vfio-pci": ("win11", "amd-desktop-isolated-dgpu", {"gpu": "vfio-pci"}, {}),
    "gpu-mdev": ("win10", "intel-laptop-gvtg", {"gpu": "mdev"}, {}),
    "gpu-sriov-vf": ("fedora37", "sriov-gpu", {"gpu": "sriov-vf"}, {}),
    # the alternative VMM
    "ch-fedora37-vfio-pci": ("fedora37", "amd-desktop-isolated-dgpu",
                             {"gpu": "vfio-pci", "vmm": "cloud-hypervisor", "disk_format": "raw"}, {}),
}


def _spec(catalogue, case: str):
    os_id, machine, request, host_changes = CASES[case]
    profile = catalogue.lookup(os_id)
    gpus = analyse(Machine(MACHINES / machine), "windows" if profile.family == "windows" else "linux")
    vfs = {g.address: ["0000:00:02.1"] for g in gpus if g.sriov_totalvfs}
    host = _host(**host_changes)
    return plan(Request(name="desktop", **request), profile, host, gpus, vfs), host


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_domain_xml(catalogue, case, tmp_path):
    spec, host = _spec(catalogue, case)
    xml = domain_xml(spec, host)
    golden = GOLDEN / f"{case}.xml"
    if os.environ.get("PHYLLOME_REGEN_GOLDEN"):
        golden.write_text(xml)
    assert xml == golden.read_text(), f"{case}: the XML differs from {golden} (PHYLLOME_REGEN_GOLDEN=1 to update)"
    result = subprocess.run(["virt-xml-validate", str(golden), "domain"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr + result.stdout


def test_every_strategy_and_family_has_a_golden_file():
    strategies = {CASES[c][2].get("gpu") for c in CASES} | {"virtio-gpu-2d"}
    assert set(STRATEGIES) <= strategies
    assert {p.stem for p in GOLDEN.glob("*.xml")} == set(CASES)


def test_rendering_is_pure(catalogue):
    spec, host = _spec(catalogue, "win11")
    assert domain_xml(spec, host) == domain_xml(spec, host)


def test_windows_11_gets_secure_boot_tpm_and_no_virtio_where_it_has_no_drivers(catalogue):
    spec, host = _spec(catalogue, "win11")
    root = ET.fromstring(domain_xml(spec, host))
    features = {f.get("name"): f.get("enabled") for f in root.findall("os/firmware/feature")}
    assert features == {"secure-boot": "yes", "enrolled-keys": "yes"}
    assert root.find("os").get("firmware") == "efi" and root.find("os/loader") is None
    assert root.find("features/smm").get("state") == "on"
    assert root.find("devices/tpm").get("model") == "tpm-crb"
    assert root.find("devices/disk/target").get("bus") == "sata"
    assert root.find("devices/interface/model").get("type") == "e1000e"
    assert root.find("clock").get("offset") == "localtime"
    cdroms = root.findall("devices/disk[@device='cdrom']/source")
    assert [c.get("file") for c in cdroms] == ["/srv/isos/Win11_23H2.iso", "/usr/share/virtio-win/virtio-win.iso"]
    assert root.find("devices/disk[@device='cdrom']/boot").get("order") == "1"


def test_hyperv_features_are_only_those_the_domain_capabilities_offer(catalogue):
    spec, host = _spec(catalogue, "win11")
    offered = {"relaxed", "vapic", "spinlocks"}
    root = ET.fromstring(domain_xml(spec, host.model_copy(update={"hyperv": sorted(offered | {"evmcs"})})))
    assert {e.tag for e in root.find("features/hyperv")} == offered
    root = ET.fromstring(domain_xml(spec, host.model_copy(update={"hyperv": []})))
    assert root.find("features/hyperv") is None


def test_domain_type_and_cpu_mode_come_from_the_host(catalogue):
    spec, host = _spec(catalogue, "fedora37")
    kvm = host.model_copy(update={"domain_type": "kvm", "cpu_modes": ["host-passthrough", "host-model"]})
    root = ET.fromstring(domain_xml(spec, kvm))
    assert root.get("type") == "kvm" and root.find("cpu").get("mode") == "host-passthrough"
    root = ET.fromstring(domain_xml(spec, host))
    assert root.get("type") == host.domain_type and root.find("cpu").get("mode") == "host-model"


def test_linux_gets_virtio_and_uefi_without_secure_boot(catalogue):
    spec, host = _spec(catalogue, "fedora37")
    root = ET.fromstring(domain_xml(spec, host))
    assert root.find("devices/disk/target").get("bus") == "virtio"
    assert root.find("devices/interface/model").get("type") == "virtio"
    assert [f.get("enabled") for f in root.findall("os/firmware/feature")] == ["no"]
    assert root.find("devices/tpm") is None and root.find("features/hyperv") is None


# ---------------------------------------------------------------------------------------------- sizing


def test_sizing_gives_the_vm_all_but_the_host_reserve(catalogue):
    spec = plan(Request(), catalogue.lookup("fedora37"), _host())
    assert spec.memory == 30 * GiB and spec.sources["memory"].startswith("sizing rule")
    assert (spec.vcpus, spec.cores, spec.threads) == (6, 3, 2)  # one core (2 threads) stays with the host
    assert spec.disk_size == 20 * GiB and spec.sources["disk_size"] == "osinfo recommended"


def test_sizing_never_goes_below_the_osinfo_minimum(catalogue):
    spec = plan(Request(), catalogue.lookup("win11"), _host(memory=4 * GiB + GiB // 2, cpus=2, threads_per_core=1))
    assert spec.memory == 4 * GiB and spec.sources["memory"] == "osinfo minimum"
    assert spec.vcpus == 2 and spec.sources["cpus"] == "osinfo minimum"
    assert any("minimum" in note for note in spec.notes)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("memory", 2 * GiB, "below Microsoft Windows 11's minimum of 4 GiB"),
    ("cpus", 1, "below Microsoft Windows 11's minimum of 2"),
    ("disk_size", 32 * GiB, "below Microsoft Windows 11's minimum of 64 GiB"),
    ("memory", 64 * GiB, "more than this host has"),
])
def test_a_user_value_below_the_minimum_is_refused_with_the_minimum_named(catalogue, field, value, message):
    with pytest.raises(UserError, match=message):
        plan(Request(**{field: value}), catalogue.lookup("win11"), _host())


def test_user_values_are_kept_and_say_so(catalogue):
    spec = plan(Request(memory=8 * GiB, cpus=4, disk_size=80 * GiB), catalogue.lookup("win11"), _host())
    assert (spec.memory, spec.vcpus, spec.disk_size) == (8 * GiB, 4, 80 * GiB)
    assert {spec.sources[k] for k in ("memory", "cpus", "disk_size")} == {"user"}


def test_windows_11_cannot_drop_its_tpm(catalogue):
    with pytest.raises(UserError, match="TPM 2.0"):
        plan(Request(tpm=False), catalogue.lookup("win11"), _host())


@pytest.mark.parametrize("bad", [{"name": "desk\x01top"}, {"name": "a b"}, {"iso": "/isos/x\n.iso"},
                                 {"iso": "relative.iso"}, {"store": "/var/../etc"}, {"serial_log": "/tmp/\x7f"}])
def test_names_and_paths_that_would_reach_xml_are_validated(bad):
    with pytest.raises(ValueError):
        Request(**bad)


# ---------------------------------------------------------------------------------------------- GPU choice


def test_auto_passes_through_the_isolated_dgpu_every_function_of_its_slot(catalogue):
    spec, _ = _spec(catalogue, "gpu-vfio-pci")
    assert spec.gpu.hostdevs == ["0000:0a:00.0", "0000:0a:00.1"]
    auto = plan(Request(), catalogue.lookup("fedora37"), _host(),
                analyse(Machine(MACHINES / "amd-desktop-isolated-dgpu"), "linux"))
    assert auto.gpu.strategy == "vfio-pci" and auto.gpu.reason.startswith("auto")


def test_the_gpu_named_by_its_address_is_the_one_used_and_an_absent_one_is_refused(catalogue):
    """Two GPUs (an isolated dGPU at 0a:00.0 and the boot display at 10:00.0): --gpu-address / [firstboot.vm]
    gpu_address chooses, as the first boot's GPU screen does; lspci's short form means domain 0000."""
    from firstboot.primary import build

    machine = Machine(MACHINES / "amd-desktop-isolated-dgpu")
    gpus = {g.address: g for g in analyse(machine, "linux")}
    assert set(gpus) == {"0000:0a:00.0", "0000:10:00.0"}
    other = "0000:10:00.0"  # both offer vfio-pci; unasked, the dGPU is taken (below)
    for asked in (other, "10:00.0", "0000:10:00.0".upper()):
        planned = build(Request(gpu="vfio-pci", gpu_address=asked), "fedora37", catalogue=catalogue, host=_host(),
                        machine=machine)
        assert planned.spec.gpu.gpu == other and all(h.startswith("0000:10:00.") for h in planned.spec.gpu.hostdevs)
    assert build(Request(gpu="vfio-pci"), "fedora37", catalogue=catalogue, host=_host(),
                 machine=machine).spec.gpu.gpu == "0000:0a:00.0"  # without it: the best offer, the dGPU
    with pytest.raises(UserError, match="0000:0b:00.0 is not on this machine .*0000:0a:00.0, 0000:10:00.0"):
        build(Request(gpu_address="0b:00.0"), "fedora37", catalogue=catalogue, host=_host(), machine=machine)
    for bad in ("0a:00", "0000:0a:00.8", "../0a:00.0", "0000:0a:00.0;reboot"):
        with pytest.raises(ValueError, match="not a PCI address"):
            Request(gpu_address=bad)
        with pytest.raises(ValueError, match="not a PCI address"):
            PrimaryVm(gpu_address=bad)
    assert PrimaryVm(gpu_address="0A:00.1").gpu_address == "0000:0a:00.1"


def test_an_unavailable_strategy_is_refused_with_its_reason(catalogue):
    gpus = analyse(Machine(MACHINES / "dgpu-shares-group-with-usb"), "windows")
    with pytest.raises(UserError, match="IOMMU group also holds"):
        plan(Request(gpu="vfio-pci"), catalogue.lookup("win11"), _host(), gpus)


def test_sriov_needs_an_enabled_virtual_function(catalogue, tmp_path):
    gpus = analyse(Machine(MACHINES / "sriov-gpu"), "linux")
    with pytest.raises(UserError, match="sriov_numvfs"):
        plan(Request(gpu="sriov-vf"), catalogue.lookup("fedora37"), _host(), gpus, {})
    assert plan(Request(), catalogue.lookup("fedora37"), _host(), gpus, {}).gpu.strategy != "sriov-vf"
    device = tmp_path / "sys/bus/pci/devices/0000:00:02.0"
    device.mkdir(parents=True)
    for n in (0, 1):
        (device / f"virtfn{n}").symlink_to(f"../0000:00:02.{n + 1}")
    assert virtual_functions(Machine(tmp_path), "0000:00:02.0") == ["0000:00:02.1", "0000:00:02.2"]


def test_the_answer_file_takes_exactly_the_strategy_names_of_gpu_py():
    names = {s.name for g in analyse(Machine(MACHINES / "amd-desktop-isolated-dgpu"), "linux") for s in g.strategies}
    assert set(get_args(PrimaryVm.model_fields["gpu"].annotation)) == names | {"auto"} == set(STRATEGIES) | {"auto"}


# ---------------------------------------------------------------------------------------------- Cloud Hypervisor


@pytest.mark.parametrize(("os_id", "request_values", "message"), [
    ("win11", {"gpu": "vfio-pci", "disk_format": "raw"}, "UEFI firmware"),
    ("fedora37", {"disk_format": "raw"}, "no emulated display"),
    ("fedora37", {"gpu": "vfio-pci"}, "raw disks"),
    ("fedora37", {"gpu": "vfio-pci", "disk_format": "raw", "tpm": True}, "TPM"),
])
def test_cloud_hypervisor_refuses_what_it_cannot_do_at_plan_time(catalogue, os_id, request_values, message):
    from firstboot.vm_ch import check_ch

    with pytest.raises(UserError, match=message):
        check_ch(Request(vmm="cloud-hypervisor", **request_values), catalogue.lookup(os_id))


# ---------------------------------------------------------------------------------------------- osinfo


def test_osinfo_facts_for_windows_11(catalogue):
    win11 = catalogue.lookup("win11")
    assert win11.family == "windows" and win11.efi_required and win11.q35 and not win11.fallback
    assert win11.minimum.memory == 4 * GiB and win11.recommended.memory == 8 * GiB
    assert win11.recommended_source["memory"] == "osinfo minimum x2"  # osinfo-db has no recommendation
    assert not any(win11.virtio.values())
    fedora = catalogue.lookup("fedora37")
    assert fedora.virtio["net"] and fedora.virtio["block"] and fedora.virtio["gpu"] and not fedora.efi_required


@pytest.mark.parametrize(("asked", "used", "words"), [
    ("fedora40", "fedora37", "newest of its family"),
    ("ubuntu30.04", "ubuntu22.04", "newest of its family"),
    ("win12", "win11", "newest of its family"),
    ("someos1", "linux2022", "generic Linux"),
])
def test_an_os_newer_than_osinfo_db_falls_back_and_says_so(catalogue, asked, used, words):
    profile = catalogue.lookup(asked)
    assert profile.short_id == used and asked in profile.fallback and words in profile.fallback
    spec = plan(Request(), profile, _host())
    assert profile.fallback in spec.notes and spec.sources["os"] == profile.fallback


def test_a_local_osinfo_directory_adds_a_newer_os(monkeypatch):
    monkeypatch.setenv("OSINFO_LOCAL_DIR", str(DATA / "osinfo"))
    fedora40 = Catalogue().lookup("fedora40")
    assert fedora40.short_id == "fedora40" and not fedora40.fallback
    assert fedora40.minimum.cpus == 2 and fedora40.virtio["block"]  # devices inherited from fedora37


def test_os_list_cli_reads_osinfo_local_dir():
    env = dict(os.environ, OSINFO_LOCAL_DIR=str(DATA / "osinfo"))
    out = subprocess.run([str(Path(sys.executable).parent / "phyllome-firstboot"), "vm", "os-list", "--json",
                          "--log", "/dev/null"], capture_output=True, text=True, env=env, check=True).stdout
    assert "fedora40" in out and "win11" in out


def test_detect_refuses_an_iso_it_does_not_know(catalogue, tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "README").write_text("nothing to install")
    iso = tmp_path / "unknown.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", "NOT_AN_OS", "-o", str(iso), str(tree)], check=True)
    with pytest.raises(UserError, match="does not recognise"):
        catalogue.detect(iso)
    with pytest.raises(UserError, match="no such"):
        catalogue.detect(tmp_path / "missing.iso")


def test_detect_recognises_an_installation_iso_by_its_volume_id(catalogue, tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "README").write_text("stand-in")
    iso = tmp_path / "fedora.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", "Fedora-WS-Live-37-1-7", "-o", str(iso), str(tree)],
                   check=True)
    profile = catalogue.detect(iso)
    assert profile.short_id == "fedora37" and profile.detected_from == str(iso)


def test_the_libvirt_version_gates_newer_elements(catalogue):
    spec, host = _spec(catalogue, "win11")
    new = ET.fromstring(domain_xml(spec, host))
    assert new.find("features/hyperv").get("mode") == "custom" and new.find("os/firmware") is not None
    old = ET.fromstring(domain_xml(spec, host.model_copy(update={"libvirt_version": 7_000_000})))
    assert old.find("features/hyperv").get("mode") is None and old.find("os/firmware") is None
    assert old.findtext("os/nvram") == spec.nvram


def test_host_smt_comes_from_the_capabilities_siblings():
    caps = """<capabilities><host><cpu><topology sockets='1' dies='1' cores='2' threads='2'/></cpu><topology>
      <cells num='1'><cell id='0'><memory unit='KiB'>16777216</memory><cpus num='4'>
        <cpu id='0' siblings='0,2'/><cpu id='1' siblings='1,3'/><cpu id='2' siblings='0,2'/><cpu id='3' siblings='1,3'/>
      </cpus></cell></cells></topology></host></capabilities>"""
    facts = hostfacts.parse(caps, (DATA / "libvirt/domcaps-qemu-q35.xml").read_text(), libvirt_version=9000000,
                            domain_type="qemu")
    assert (facts.memory, facts.cpus, facts.threads_per_core) == (16 * GiB, 4, 2)
    assert hostfacts.reserve(facts) == (2 * GiB, 2)
    assert facts.hyperv == ["spinlocks", "vendor_id"] and facts.memfd and facts.secure_boot
    assert "tpm-crb" in facts.tpm_models and "host-passthrough" not in facts.cpu_modes


def test_a_mediated_device_is_created_through_sysfs_before_the_dry_run(catalogue, tmp_path):
    from firstboot.libvirt_backend import Backend

    spec, _ = _spec(catalogue, "gpu-mdev")
    create = tmp_path / f"sys/bus/pci/devices/{spec.gpu.gpu}/mdev_supported_types/{spec.gpu.mdev_type}/create"
    create.parent.mkdir(parents=True)
    create.write_text("")
    Backend(None, None, root=tmp_path).ensure_mdev(spec)
    assert create.read_text() == f"{spec.gpu.mdev_uuid}\n"
