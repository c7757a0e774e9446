"""GPUs (PCI class 0x03), whether each can be isolated for passthrough, and the graphics strategy per guest.

Isolation: every device in the GPU's IOMMU group goes to the guest with it. PCI bridges may share the group;
the other functions of the GPU's own slot (its HDMI audio, its USB-C controller) go along; anything else blocks,
and is named. Strategies, best first where available: vfio-pci passthrough, an SR-IOV virtual function, a
mediated device (GVT-g and the like), virtio-gpu with virgl/venus 3D, plain 2D virtio-gpu.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

from phyllome_installer.core.facts import PCI_ADDRESS
from phyllome_installer.core.files import read_bounded

from .checks import Machine, number

PCI = "sys/bus/pci/devices"
PCI_IDS = ("usr/share/hwdata/pci.ids", "usr/share/misc/pci.ids", "usr/share/pci.ids")
CLASS_NAMES = {"0x0300": "VGA controller", "0x0302": "3D controller", "0x0380": "display controller",
               "0x0403": "audio device", "0x0c03": "USB controller", "0x0200": "Ethernet controller",
               "0x0280": "network controller", "0x0106": "SATA controller", "0x0108": "NVMe controller",
               "0x0c05": "SMBus controller", "0x0604": "PCI bridge"}
VIRGL_DRIVERS = {"i915", "xe", "amdgpu", "radeon", "nouveau", "virtio-pci", "virtio_gpu"}
VENUS_DRIVERS = {"i915", "xe", "amdgpu"}


@dataclass(frozen=True)
class Strategy:
    name: str
    rank: int
    available: bool
    reason: str


@dataclass
class Gpu:
    address: str
    name: str
    vendor_id: str
    device_id: str
    driver: str
    boot_vga: bool
    render_node: str
    iommu_group: str | None
    group_members: list[str]
    isolated: bool
    blockers: list[str]
    sriov_totalvfs: int
    mdev_types: list[str]
    virgl: bool
    strategies: list[Strategy] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["blockers"] = self.blockers
        return data


def _hex(text: str) -> str:
    return text.strip().lower().removeprefix("0x")


def _int(text: str) -> int:
    return number(text) or 0


def _iommu_group(m: Machine, base: str) -> str | None:
    """The device's IOMMU group number, from its ``iommu_group`` link (``.../iommu_groups/N``); None without
    one. A link to anything else (``..``, ``/``, a name that is not a number) is no group: noted, never taken
    for an isolated one."""
    link = m.path(f"{base}/iommu_group")
    if not link.is_symlink():
        return None
    try:
        name = os.path.basename(os.readlink(link).rstrip("/"))
    except OSError:
        return None
    if re.fullmatch(r"[0-9]{1,9}", name):
        return name
    m.unreadable[f"{base}/iommu_group"] = "is a link to no IOMMU group (its target is not .../iommu_groups/N)"
    return None


def _slot(address: str) -> str:
    return address.rsplit(".", 1)[0]


@cache
def _pci_ids(path: str) -> dict[str, str]:
    """Vendor "vvvv" and device "vvvv:dddd" names from pci.ids (read once)."""
    names: dict[str, str] = {}
    vendor = ""
    try:
        lines = read_bounded(path, 16 << 20).decode("utf-8", errors="replace").splitlines()
    except OSError:
        return names
    for line in lines:
        if not line or line[0] == "#":
            continue
        if line.startswith("C "):
            break  # device classes follow: no more vendors
        if line[0] != "\t":
            vendor = line[:4]
            names[vendor] = line[6:].strip()
        elif line[1] != "\t" and vendor:
            names[f"{vendor}:{line[1:5]}"] = line[7:].strip()
    return names


def describe(m: Machine, address: str) -> str:
    base = f"{PCI}/{address}"
    vendor, device = _hex(m.read(f"{base}/vendor")), _hex(m.read(f"{base}/device"))
    # The machine's own pci.ids, else this system's: names do not depend on where the facts were captured.
    candidates = [m.path(p) for p in PCI_IDS] + [Path("/") / p for p in PCI_IDS]
    ids = next((_pci_ids(str(p)) for p in candidates if p.exists()), {})
    if f"{vendor}:{device}" in ids:
        return f"{ids.get(vendor, vendor)} {ids[f'{vendor}:{device}']}"
    cls = CLASS_NAMES.get(m.read(f"{base}/class").strip()[:6], "PCI device")
    return f"{cls} [{vendor}:{device}]"


def inventory(m: Machine) -> list[Gpu]:
    gpus = []
    for address in m.listdir(PCI):
        if not PCI_ADDRESS.fullmatch(address):
            continue  # not a PCI device name: a malformed or foreign tree
        base = f"{PCI}/{address}"
        if not m.read(f"{base}/class").strip().startswith("0x03"):
            continue
        group = _iommu_group(m, base)
        members = m.listdir(f"sys/kernel/iommu_groups/{group}/devices") if group else []
        blockers = []
        for member in members:
            if member == address or _slot(member) == _slot(address):
                continue  # the GPU itself, and the other functions of its slot, go along
            if m.read(f"{PCI}/{member}/class").strip().startswith("0x0604"):
                continue  # PCI bridges may share the group
            blockers.append(f"{member} ({describe(m, member)})")
        driver_link = m.path(f"{base}/driver")
        renders = [n for n in m.listdir(f"{base}/drm") if n.startswith("renderD")]
        driver = os.path.basename(os.readlink(driver_link)) if driver_link.is_symlink() else ""
        gpus.append(Gpu(
            address=address, name=describe(m, address), vendor_id=_hex(m.read(f"{base}/vendor")),
            device_id=_hex(m.read(f"{base}/device")), driver=driver, boot_vga=m.read(f"{base}/boot_vga").strip() == "1",
            render_node=f"/dev/dri/{renders[0]}" if renders else "", iommu_group=group, group_members=members,
            isolated=group is not None and not blockers, blockers=blockers,
            sriov_totalvfs=_int(m.read(f"{base}/sriov_totalvfs", "0")),
            mdev_types=m.listdir(f"{base}/mdev_supported_types"),
            virgl=bool(renders) and driver in VIRGL_DRIVERS,
        ))
    return gpus


def rank(gpu: Gpu, all_gpus: list[Gpu], guest: str) -> list[Strategy]:
    """Every strategy for this GPU and guest family, available ones first, best first, each with its reason."""
    only_gpu = len(all_gpus) == 1
    windows = guest == "windows"
    options: list[tuple[str, bool, str]] = []
    if gpu.iommu_group is None:
        options.append(("vfio-pci", False, "no IOMMU group: enable VT-d/AMD-Vi and intel_iommu=on/amd_iommu=on"))
    elif not gpu.isolated:
        options.append(("vfio-pci", False, "its IOMMU group also holds " + ", ".join(gpu.blockers)
                        + ": they would all go to the guest (try another PCIe slot, or a firmware ACS option)"))
    elif only_gpu or gpu.boot_vga:
        options.append(("vfio-pci", True, "full native performance, but this is the host's "
                        + ("only GPU" if only_gpu else "boot GPU") + ": passing it through leaves the host console "
                        "blind (manage the host over the network)"))
    else:
        options.append(("vfio-pci", True, "full native performance and the guest's own driver; the GPU is alone in "
                        "its IOMMU group" + (" with the other functions of its slot"
                                             if len(gpu.group_members) > 1 else "")))
    if gpu.sriov_totalvfs > 0:
        options.append(("sriov-vf", True, f"up to {gpu.sriov_totalvfs} virtual functions: near-native 3D shared with "
                        "the host, which keeps its console"))
    else:
        options.append(("sriov-vf", False, "the GPU offers no SR-IOV virtual functions"))
    if gpu.mdev_types:
        options.append(("mdev", True, f"mediated device ({', '.join(gpu.mdev_types[:2])}): a slice of the GPU with "
                        "its native driver in the guest, the host keeps the GPU"))
    else:
        options.append(("mdev", False, "the GPU offers no mediated device types (GVT-g is for Intel Gen 5-10)"))
    if windows:
        options.append(("virtio-gpu-3d", False, "Windows' virtio-gpu driver has no 3D acceleration"))
    elif gpu.virgl:
        venus = " and Vulkan through venus" if gpu.driver in VENUS_DRIVERS else ""
        options.append(("virtio-gpu-3d", True, f"OpenGL through virgl{venus} on {gpu.render_node}: good for "
                        "desktops, slower than passthrough for games"))
    else:
        options.append(("virtio-gpu-3d", False, "no render node with a virgl-capable driver on the host"))
    options.append(("virtio-gpu-2d", True, "works everywhere; no 3D acceleration" + (
        " (the fallback for Windows guests)" if windows else "")))
    preference = {"vfio-pci": 0, "sriov-vf": 1, "mdev": 2, "virtio-gpu-3d": 3, "virtio-gpu-2d": 4}
    if only_gpu or gpu.boot_vga:
        # Sharing the GPU keeps the host console; for a Linux guest virgl does too, and is enough for a desktop.
        preference["vfio-pci"] = 3.5 if not windows else 2.5
    ordered = sorted(options, key=lambda o: (not o[1], preference[o[0]]))
    return [Strategy(name, index, available, reason) for index, (name, available, reason) in enumerate(ordered, 1)]


def analyse(m: Machine, guest: str = "windows") -> list[Gpu]:
    gpus = inventory(m)
    for gpu in gpus:
        gpu.strategies = rank(gpu, gpus, guest)
    return gpus
