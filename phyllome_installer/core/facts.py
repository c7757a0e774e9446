"""Facts of Phyllome OS that several parts of the code share, each defined once.

The installer writes what first boot reads (the marker, the VM store), the schema and the screens apply the same
passphrase rule, and the probe and the checks read the CPU vendor the same way.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

#: The first-boot marker on the installed system (relative to its root): present until first boot succeeded.
FIRSTBOOT_MARKER = "etc/phyllome/firstboot"
#: [firstboot] of the answer file, saved by the installer into the target for the first boot (no secret in it).
FIRSTBOOT_ANSWERS = "etc/phyllome/firstboot.toml"
#: The VM store: libvirt's image directory, encrypted with fscrypt on an installed system.
VM_STORE = "/var/lib/libvirt/images"
#: The shortest passphrase the VM store accepts (the answer file and the screens alike).
MIN_PASSPHRASE = 8
#: The shortest admin password (the answer file and the screens alike).
MIN_PASSWORD = 8
#: The ostree OS name (stateroot) of the installed host; also an argument of the install's commands.
OSNAME = "phyllome"
#: Words the install itself passes as whole command-line arguments that are long enough to be a passphrase or a
#: password: a secret equal to one of them would be refused on the command line, so the answer file refuses it.
COMMAND_WORDS = frozenset({OSNAME, "EFI System", "x86_64-efi", "--removable", "--no-nvram"})

#: How the primary VM gets its graphics (firstboot/gpu.py ranks them per GPU), plainest first.
GpuStrategy = Literal["virtio-gpu-2d", "virtio-gpu-3d", "vfio-pci", "mdev", "sriov-vf"]
GPU_STRATEGIES: tuple[str, ...] = get_args(GpuStrategy)
#: What a user may ask for: a strategy, or "auto" (the first-boot checks' recommendation).
GpuRequest = Literal["auto", GpuStrategy]
GPU_REQUESTS: tuple[str, ...] = get_args(GpuRequest)
#: The virtual machine monitors of the primary VM (QEMU/KVM, or Cloud Hypervisor through libvirt's ch driver).
Vmm = Literal["qemu", "cloud-hypervisor"]
VMMS: tuple[str, ...] = get_args(Vmm)

#: A libvirt domain name of the primary VM (the answer file's [firstboot.vm] and the first boot's request).
VM_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: A libosinfo short id ("win11", "fedora37"), as the answer file and firstboot/osinfo.py accept it.
OS_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
#: A PCI function's address as sysfs names it and ``lspci -D`` prints it: domain:bus:slot.function.
PCI_ADDRESS = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")


def pci_address(text: str) -> str:
    """A GPU's PCI address in its full form: ``0000:01:00.0``, or ``01:00.0`` as plain ``lspci`` prints it (domain
    0000), in either case. ValueError, in words, for anything else."""
    full = text.strip().lower()
    full = full if full.count(":") == 2 else "0000:" + full
    if not PCI_ADDRESS.fullmatch(full):
        raise ValueError(f"{text[:40]!r} is not a PCI address: write it as lspci -D prints it, e.g. 0000:01:00.0")
    return full


#: The CPU flags of hardware virtualization: Intel VT-x, AMD-V.
VIRTUALIZATION_FLAGS = frozenset({"vmx", "svm"})
#: fscrypt's FS_IOC_GET_ENCRYPTION_POLICY_EX (linux/fscrypt.h): whether a directory has a policy, and which.
FS_IOC_GET_ENCRYPTION_POLICY_EX = 0xC0096616
_MEM_TOTAL = re.compile(r"^MemTotal:\s+(\d+) kB", re.MULTILINE)


def mem_total_field(meminfo: str) -> str | None:
    """The digits of /proc/meminfo's MemTotal (in KiB), None when the text has none."""
    match = _MEM_TOTAL.search(meminfo)
    return match.group(1) if match else None


CpuVendor = Literal["intel", "amd", "other"]


def cpu_vendor(cpuinfo: str) -> CpuVendor:
    """The CPU vendor from /proc/cpuinfo's text (Hygon is AMD's licensee: same virtualization, same IOMMU)."""
    if "GenuineIntel" in cpuinfo:
        return "intel"
    if "AuthenticAMD" in cpuinfo or "HygonGenuine" in cpuinfo:
        return "amd"
    return "other"
