"""What the host's libvirt offers: read from its capabilities and domain capabilities XML, never assumed.

:class:`HostFacts` is plain data, so the VM builder stays a pure function and the tests can load a saved copy of
a machine's XML (``tests/data/libvirt/``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pydantic import BaseModel, ConfigDict

from phyllome_installer.core.sizes import GiB

from . import kvm

VIRTIO_WIN = ("usr/share/virtio-win/virtio-win.iso", "usr/share/virtio-win/virtio-win-latest.iso")


class HostFacts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    domain_type: str
    """``kvm`` where KVM works, else ``qemu`` (TCG): from the capabilities and a probe, never hard-coded."""
    emulator: str
    machine: str
    libvirt_version: int
    memory: int
    """Host memory in bytes."""
    cpus: int
    threads_per_core: int
    cpu_modes: list[str]
    hyperv: list[str]
    memfd: bool
    efi: bool
    """Firmware autoselection offers ``efi``."""
    secure_boot: bool
    tpm_models: list[str]
    graphics: list[str]
    video: list[str]
    virtio_win: str | None = None
    """The virtio-win driver ISO, where the host has it."""
    network: bool = True
    """libvirt has a network driver (``qemu:///embed`` has none: the guest then gets user-mode networking)."""
    smm: bool = True
    """The domain type can give a guest SMM, which Secure Boot firmware needs (TCG always can; KVM on some nested
    hosts cannot)."""
    accelerator_note: str = ""
    """Why KVM is not used, or what it lacks, in words (empty when KVM runs guests with everything)."""


def _enum(node: ET.Element | None, name: str) -> list[str]:
    if node is None:
        return []
    found = node.find(f".//enum[@name='{name}']")
    return [v.text or "" for v in found.findall("value")] if found is not None else []


def domain_types(capabilities_xml: str, arch: str = "x86_64") -> list[str]:
    """The domain types (``qemu``, ``kvm``, ...) the capabilities offer for hvm guests on ``arch``."""
    caps = ET.fromstring(capabilities_xml)
    types: list[str] = []
    for guest in caps.findall("guest"):
        arch_node = guest.find("arch")
        if guest.findtext("os_type") == "hvm" and arch_node is not None and arch_node.get("name") == arch:
            types += [d.get("type", "") for d in arch_node.findall("domain") if d.get("type") not in types]
    return types


def accelerator(types: list[str], verdict: kvm.Verdict | None) -> tuple[str, bool, str]:
    """(domain type, SMM, note) from the domain types libvirt offers and the KVM probe's verdict: kvm only when a
    guest really ran under it; else TCG (``qemu``), which is slow but always has SMM."""
    if verdict is not None and verdict.runs:
        return "kvm", verdict.smm, verdict.reason
    fallback = "qemu" if "qemu" in types else types[0]
    if verdict is None:
        return fallback, fallback == "qemu", "libvirt offers no KVM here"
    return fallback, fallback == "qemu", f"KVM is not used: {verdict.reason}"


def parse(capabilities_xml: str, domcaps_xml: str, *, libvirt_version: int, domain_type: str,
          virtio_win: str | None = None, network: bool = True, smm: bool = True,
          accelerator_note: str = "") -> HostFacts:
    caps = ET.fromstring(capabilities_xml)
    dom = ET.fromstring(domcaps_xml)
    memory = sum(int(c.findtext("memory", "0")) * 1024 for c in caps.findall("host/topology/cells/cell"))
    cpus = caps.findall("host/topology/cells/cell/cpus/cpu")
    siblings = max((len(c.get("siblings", "").replace("-", ",").split(",")) for c in cpus), default=1)
    topology = caps.find("host/cpu/topology")
    threads = max(siblings, int(topology.get("threads", "1")) if topology is not None else 1)
    modes = [m.get("name", "") for m in dom.findall("cpu/mode") if m.get("supported") == "yes"]
    loader = dom.find("os/loader")
    return HostFacts(
        domain_type=domain_type, emulator=dom.findtext("path", ""), machine=dom.findtext("machine", ""),
        libvirt_version=libvirt_version, memory=memory, cpus=len(cpus) or 1, threads_per_core=threads,
        cpu_modes=modes, hyperv=_enum(dom.find("features/hyperv"), "features"),
        memfd="memfd" in _enum(dom.find("memoryBacking"), "sourceType"),
        efi="efi" in _enum(dom.find("os"), "firmware"), secure_boot="yes" in _enum(loader, "secure"),
        tpm_models=_enum(dom.find("devices/tpm"), "model"), graphics=_enum(dom.find("devices/graphics"), "type"),
        video=_enum(dom.find("devices/video"), "modelType"), virtio_win=virtio_win, network=network,
        smm=smm, accelerator_note=accelerator_note)


def reserve(host: HostFacts) -> tuple[int, int]:
    """What the host keeps for itself: (memory bytes, cpus). An appliance host runs libvirt, QEMU's own
    overhead and a small console, so it keeps 1 GiB up to 8 GiB of RAM, 2 GiB up to 32 GiB, 4 GiB above;
    and one core (all of its threads) when it has more than one."""
    memory = GiB if host.memory <= 8 * GiB else (2 * GiB if host.memory <= 32 * GiB else 4 * GiB)
    cpus = host.threads_per_core if host.cpus > host.threads_per_core else 0
    return memory, cpus
