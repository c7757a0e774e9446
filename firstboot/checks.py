"""Hardware checks for running a desktop as a VM, in the style of virt-host-validate, with a remedy for each.

Every check reads below an injectable root directory (default ``/``), so a saved machine tree can stand in for
real hardware (``tests/data/machines/``). What cannot be read from files on a saved tree (the ``/dev/kvm``
ioctls, free space, the encryption state of a directory) comes from the tree's ``phyllome-capture.json``, which
``tests/data/machines/capture.sh`` records; on the live root it is measured.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from phyllome_installer.core import cmdline, facts
from phyllome_installer.core.facts import cpu_vendor
from phyllome_installer.core.files import BoundedReadError, read_bounded
from phyllome_installer.core.sizes import GiB

from . import kvm

Status = Literal["PASS", "WARN", "FAIL", "NOTE"]

KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
VM_STORE = facts.VM_STORE.lstrip("/")
MAX_READ = 8 << 20


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    status: Status
    found: str
    remedy: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """virt-host-validate's layout, the title a sentence: ``<title> : PASS`` or ``FAIL (remedy)``."""
        detail = self.remedy if self.status in ("WARN", "FAIL") else (self.found if self.status == "NOTE" else "")
        return f"{self.title:<66} : {self.status}" + (f" ({detail})" if detail else "")


#: The largest number a machine file may hold (bytes of RAM, free space): 2**63; more is a malformed file.
MAX_NUMBER = 1 << 63


def load_json(text: str):
    """JSON from a machine file, or None when it is not JSON: malformed, nested too deep (RecursionError) or
    holding an integer too long for Python to convert (ValueError beyond 4300 digits)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def number(text: str) -> int | None:
    """A decimal number of a machine file (at most 19 digits, at most :data:`MAX_NUMBER`), else None."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if value <= MAX_NUMBER else None


class Machine:
    """Files of a machine below ``root``; on the live root, the syscalls a saved tree can only record."""

    def __init__(self, root: Path = Path("/"), kvm_probe: Callable[[Path], kvm.Verdict] | None = None, *,
                 store: Path | None = None) -> None:
        """``kvm_probe``: runs a guest under KVM (default: :func:`firstboot.kvm.probe_once` with QEMU); live root
        only, a saved tree records its verdict. ``store``: a VM store that is real on this machine although the
        rest is a saved tree (the sandbox's, in its loop image): read as it is, not from the capture."""
        self.root = Path(root)
        self.live = self.root == Path("/")
        self.store = Path(store) if store is not None else (self.path(VM_STORE) if self.live else None)
        """The VM store read as it is (None: a saved tree's store, known only from its capture)."""
        self.kvm_probe = kvm_probe or (lambda dev: kvm.probe_once(None, dev=dev))  # live root only
        self.unreadable: dict[str, str] = {}
        """Files that exist but could not be read (a FIFO, a device, a symlink loop, too large): reported."""
        self.capture: dict = {}
        if os.path.lexists(self.path("phyllome-capture.json")):
            capture = load_json(self.read("phyllome-capture.json", "{}"))
            if isinstance(capture, dict):
                self.capture = capture
            else:
                self.unreadable.setdefault("phyllome-capture.json", "is not a JSON object")

    def _captured(self, key: str, kind: type, default):
        """A value of the capture file, when it has the expected type (else noted, and ``default``)."""
        value = self.capture.get(key, default)
        if value is default or (isinstance(value, kind) and not (kind is int and isinstance(value, bool))):
            if kind is int and value is not default and not 0 <= value <= MAX_NUMBER:
                self.unreadable[f"phyllome-capture.json: {key}"] = f"is out of range (0 to {MAX_NUMBER})"
                return default
            return value
        self.unreadable[f"phyllome-capture.json: {key}"] = f"is not a {kind.__name__}"
        return default

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def read(self, rel: str, default: str = "") -> str:
        """A file's text (bounded: only regular files, at most :data:`MAX_READ` bytes); ``default`` otherwise."""
        try:
            return read_bounded(self.path(rel), MAX_READ).decode("utf-8", errors="replace")
        except BoundedReadError as exc:
            if exc.reason != "does not exist":
                self.unreadable[rel.lstrip("/")] = exc.reason
            return default

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self.path(rel))

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(rel)))
        except OSError:
            return []

    def cpu_flags(self) -> set[str]:
        match = re.search(r"^flags\s*:(.*)$", self.read("proc/cpuinfo"), re.MULTILINE)
        return set(match.group(1).split()) if match else set()

    def cpu_vendor(self) -> str:
        return cpu_vendor(self.read("proc/cpuinfo"))

    def cmdline(self) -> list[str]:
        return cmdline.words(self.read("proc/cmdline"))

    def kvm(self) -> dict:
        """``{"exists", "api_version", "create_vm", "error", "runs", "smm", "run_error"}`` for /dev/kvm: ``runs``
        only from a guest that really ran (the same verdict that chooses the VM's domain type)."""
        if not self.live:
            return self._captured("kvm", dict, {"exists": self.exists("dev/kvm")})
        info: dict = {"exists": self.exists("dev/kvm")}
        if not info["exists"]:
            return info
        try:
            fd = os.open(self.path("dev/kvm"), os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            return info | {"error": f"cannot open /dev/kvm: {exc.strerror}"}
        try:
            info["api_version"] = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
            try:
                vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
                os.close(vm)
                info["create_vm"] = True
            except OSError as exc:
                info["create_vm"] = False
                info["error"] = f"KVM_CREATE_VM failed: {exc.strerror}"
        except OSError as exc:
            info["error"] = f"KVM_GET_API_VERSION failed: {exc.strerror}"
        finally:
            os.close(fd)
        if info.get("create_vm"):
            verdict = self.kvm_probe(self.path("dev/kvm"))
            info |= {"runs": verdict.runs, "smm": verdict.smm, "run_error": verdict.reason}
        return info

    @property
    def store_shown(self) -> str:
        """How the checks name the VM store: the path read, else the installed host's."""
        return str(self.store) if self.store is not None else f"/{VM_STORE}"

    def store_free(self) -> int | None:
        if self.store is None:
            return self._captured("store_free_bytes", int, None)
        path = self.store
        while not path.exists() and path != path.parent:
            path = path.parent
        stat = os.statvfs(path)
        return stat.f_bavail * stat.f_frsize

    def store_encrypted(self) -> bool | None:
        """Whether the VM store has an fscrypt policy (None: there is no VM store)."""
        if self.store is None:
            return self._captured("store_encrypted", bool, None)
        if not self.store.is_dir():
            return None
        return has_policy(self.store)


def has_policy(directory: Path) -> bool | None:
    """Whether ``directory`` has an fscrypt policy, asked of the kernel (locked or not, with or without
    fscrypt's configuration); None when it cannot be opened as a directory (no store, or a symlink)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.ioctl(fd, facts.FS_IOC_GET_ENCRYPTION_POLICY_EX, bytearray(struct.pack("Q", 24) + bytes(24)))
        return True
    except OSError:
        return False  # ENODATA: not encrypted; ENOTTY/EOPNOTSUPP: the filesystem cannot
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------- the checks


def cpu_virtualization(m: Machine) -> Check:
    title = "The processor supports hardware virtualization (Intel VT-x or AMD-V)"
    flags = m.cpu_flags()
    found = "vmx (Intel VT-x)" if "vmx" in flags else "svm (AMD-V)" if "svm" in flags else "no vmx or svm flag"
    if flags & facts.VIRTUALIZATION_FLAGS:
        return Check("cpu-virt", title, "PASS", found)
    return Check("cpu-virt", title, "FAIL", found,
                 "enable Intel VT-x or AMD-V (SVM) in the firmware setup; without it VMs run emulated, very slowly")


def kvm_device(m: Machine) -> Check:
    title = "This kernel can run virtual machines with KVM (/dev/kvm)"
    info = m.kvm()
    if not info.get("exists"):
        remedy = "load the kvm_intel or kvm_amd module" if m.cpu_flags() & facts.VIRTUALIZATION_FLAGS else \
            "enable hardware virtualization in the firmware, then load kvm_intel or kvm_amd"
        return Check("kvm", title, "FAIL", "/dev/kvm is missing", remedy)
    if info.get("api_version") != 12 or not info.get("create_vm"):
        found = info.get("error") or f"KVM API version {info.get('api_version')}"
        return Check("kvm", title, "FAIL", found,
                     "KVM cannot create a VM here: enable virtualization in the firmware, check dmesg for kvm errors")
    if info.get("runs") is False:
        return Check("kvm", title, "FAIL", info.get("run_error") or "a test guest did not run under KVM",
                     "KVM opens but cannot run a guest here (typically a nested host whose hypervisor does not "
                     "pass virtualization through): VMs would run emulated, very slowly. Install on the machine "
                     "itself, or enable nested virtualization in the outer hypervisor")
    if info.get("smm") is False:
        return Check("kvm", title, "WARN", "KVM runs guests but cannot give them SMM",
                     "Secure Boot guests (Windows 11) need SMM: install on the machine itself, or let the outer "
                     "hypervisor expose SMM")
    ran = "; a test guest ran under KVM" if info.get("runs") else ""
    return Check("kvm", title, "PASS", f"KVM API 12, KVM_CREATE_VM works{ran}")


def _present(m: Machine, check_id: str, title: str, rel: str, missing: Status, remedy: str) -> Check:
    """A check that a device node or a program is there."""
    if m.exists(rel):
        return Check(check_id, title, "PASS", f"/{rel}")
    return Check(check_id, title, missing, f"/{rel} is missing", remedy)


def vhost_net(m: Machine) -> Check:
    return _present(m, "vhost-net", "Fast virtual networking is available (/dev/vhost-net)", "dev/vhost-net", "WARN",
                    "load the vhost_net module (modprobe vhost_net) for fast virtio networking")


def tun(m: Machine) -> Check:
    return _present(m, "tun", "Virtual network cards can be made (/dev/net/tun)", "dev/net/tun", "FAIL",
                    "load the tun module (modprobe tun): VMs need it for bridged and user networking")


def iommu_firmware(m: Machine) -> Check:
    tables = m.listdir("sys/firmware/acpi/tables")
    title = "The firmware offers an IOMMU, needed to give a device to a VM"
    if "DMAR" in tables:
        return Check("iommu-firmware", title, "PASS", "ACPI DMAR table (Intel VT-d)")
    if "IVRS" in tables:
        return Check("iommu-firmware", title, "PASS", "ACPI IVRS table (AMD-Vi)")
    firmware = "Intel VT-d" if m.cpu_vendor() == "intel" else "AMD-Vi (IOMMU)" if m.cpu_vendor() == "amd" else \
        "the IOMMU"
    return Check("iommu-firmware", title, "WARN", "no ACPI DMAR or IVRS table",
                 f"enable {firmware} in the firmware setup; GPU passthrough needs it")


def iommu_kernel(m: Machine) -> Check:
    groups = m.listdir("sys/kernel/iommu_groups")
    args = m.cmdline()
    wanted = {"intel": "intel_iommu=on", "amd": "amd_iommu=on"}.get(m.cpu_vendor(), "iommu=on")
    given = [a for a in args if a.split("=")[0] in ("intel_iommu", "amd_iommu", "iommu")]
    found = f"{len(groups)} IOMMU groups; kernel arguments: {' '.join(given) or 'none'}"
    title = "The kernel has turned the IOMMU on"
    if groups:
        if "iommu=pt" not in args:
            return Check("iommu-kernel", title, "NOTE", found + " (iommu=pt is recommended for host performance)")
        return Check("iommu-kernel", title, "PASS", found)
    if not any(t in m.listdir("sys/firmware/acpi/tables") for t in ("DMAR", "IVRS")):
        return Check("iommu-kernel", title, "WARN", found, "enable the IOMMU in the firmware first")
    return Check("iommu-kernel", title, "WARN", found, f"add {wanted} iommu=pt to the kernel command line "
                                                          f"(rpm-ostree kargs --append={wanted} --append=iommu=pt)")


def interrupt_remapping(m: Machine) -> Check:
    title = "Interrupt remapping shields the host from a device given to a VM"
    if "intremap=off" in m.cmdline():
        return Check("intremap", title, "WARN", "intremap=off on the kernel command line",
                     "remove intremap=off: passthrough is unsafe without interrupt remapping")
    units = m.listdir("sys/class/iommu")
    for unit in units:
        ecap = m.read(f"sys/class/iommu/{unit}/intel-iommu/ecap").strip()
        if ecap:
            if int(ecap, 16) & (1 << 3):
                return Check("intremap", title, "PASS", f"{unit}: IR capability in ecap {ecap}")
            return Check("intremap", title, "WARN", f"{unit}: no IR capability in ecap {ecap}",
                         "passthrough needs allow_unsafe_interrupts on this platform; prefer virtio-gpu")
        if m.exists(f"sys/class/iommu/{unit}/amd-iommu"):
            return Check("intremap", title, "PASS", f"{unit}: AMD-Vi (interrupt remapping is part of it)")
    return Check("intremap", title, "NOTE", "no active IOMMU to ask", "")


def nested(m: Machine) -> Check:
    title = "A VM can run virtual machines of its own (nested virtualization)"
    for module in ("kvm_intel", "kvm_amd"):
        value = m.read(f"sys/module/{module}/parameters/nested").strip()
        if value:
            if value in ("Y", "1"):
                return Check("nested", title, "PASS", f"{module} nested={value}")
            return Check("nested", title, "NOTE", f"{module} nested={value}",
                         f"options {module} nested=1 (the installer writes it; reboot to apply)")
    return Check("nested", title, "NOTE", "no kvm_intel or kvm_amd module loaded")


def ignore_msrs(m: Machine) -> Check:
    title = "KVM ignores processor registers it does not know (MSRs)"
    value = m.read("sys/module/kvm/parameters/ignore_msrs").strip()
    if value in ("Y", "1"):
        return Check("ignore-msrs", title, "PASS", "kvm.ignore_msrs=Y")
    return Check("ignore-msrs", title, "NOTE",
                 f"kvm.ignore_msrs={value or 'unknown'}: some Windows programs stop on unhandled MSRs "
                 "(kvm.ignore_msrs=1 on the kernel command line avoids it)")


CGROUP_NEEDED = ("cpu", "memory", "io", "pids")


def cgroups(m: Machine) -> Check:
    controllers = m.read("sys/fs/cgroup/cgroup.controllers").split()
    title = "The resource controls that limit VMs are available ({})"
    if controllers:  # cgroup v2: no 'devices' controller exists (eBPF does its work); do not ask for it
        missing = [c for c in CGROUP_NEEDED if c not in controllers]
        if missing:
            return Check("cgroups", title.format("cgroup v2"), "WARN", f"v2: {' '.join(controllers)}",
                         f"enable the {', '.join(missing)} controller(s)")
        return Check("cgroups", title.format("cgroup v2"), "PASS", f"v2: {' '.join(controllers)}")
    v1 = m.listdir("sys/fs/cgroup")
    missing = [c for c in ("cpu", "memory", "blkio", "pids", "devices") if c not in v1]
    if v1 and not missing:
        return Check("cgroups", title.format("cgroups"), "PASS", f"v1: {' '.join(v1)}")
    return Check("cgroups", title.format("cgroups"), "WARN", f"v1: {' '.join(v1) or 'none'}",
                 "boot with the unified cgroup hierarchy (systemd.unified_cgroup_hierarchy=1)")


def uefi_firmware(m: Machine) -> Check:
    title = "UEFI firmware for VMs is installed (OVMF)"
    found = []
    for name in m.listdir("usr/share/qemu/firmware"):
        descriptor = load_json(m.read(f"usr/share/qemu/firmware/{name}"))
        if not isinstance(descriptor, dict):
            continue  # not a descriptor: malformed, too deep, or not an object
        kinds, targets, features = (descriptor.get(key) for key in ("interface-types", "targets", "features"))
        if not (isinstance(kinds, list) and isinstance(targets, list)):
            continue
        if "uefi" in kinds and any(isinstance(t, dict) and t.get("architecture") == "x86_64" for t in targets):
            found.append((name, {f for f in features if isinstance(f, str)} if isinstance(features, list) else set()))
    secure = [n for n, features in found if "secure-boot" in features]
    if secure:
        return Check("ovmf", title, "PASS", f"{len(found)} descriptors; Secure Boot: {', '.join(secure)}")
    if found:
        return Check("ovmf", title, "WARN", f"{len(found)} descriptors, none with Secure Boot",
                     "install the Secure Boot OVMF build (edk2-ovmf): Windows 11 needs Secure Boot")
    return Check("ovmf", title, "FAIL", "no OVMF firmware descriptor in /usr/share/qemu/firmware",
                 "install OVMF (edk2-ovmf): UEFI guests such as Windows 11 need it")


def swtpm(m: Machine) -> Check:
    return _present(m, "swtpm", "A virtual TPM for VMs is installed (swtpm)", "usr/bin/swtpm", "WARN",
                    "install swtpm: Windows 11 needs a TPM 2.0")


def memory(m: Machine) -> Check:
    title = "This computer has enough memory for a desktop VM"
    digits = facts.mem_total_field(m.read("proc/meminfo"))
    kib = number(digits) if digits else None
    if digits and kib is None:
        m.unreadable["proc/meminfo"] = "has a MemTotal too large to be true"
    total = (kib or 0) * 1024
    found = f"{total / GiB:.1f} GiB of RAM"
    if total >= 12 * GiB:
        return Check("ram", title, "PASS", found)
    if total >= 6 * GiB:
        return Check("ram", title, "WARN", found,
                     "a Windows 11 guest needs 4 GiB and the host about 2 GiB: give the guest little else")
    return Check("ram", title, "FAIL", found, "at least 8 GiB of RAM is needed for a desktop VM")


def store_space(m: Machine) -> Check:
    free = m.store_free()
    title = "The VM store has enough free space"
    if free is None:
        return Check("store-space", title, "NOTE", "unknown (not recorded for this machine)")
    found = f"{free / GiB:.0f} GiB free under {m.store_shown}"
    if free >= 64 * GiB:
        return Check("store-space", title, "PASS", found)
    return Check("store-space", title, "WARN", found, "a Windows 11 guest needs at least 64 GiB: free some space")


def store_encryption(m: Machine) -> Check:
    state = m.store_encrypted()
    title = "The VM store is encrypted"
    if state is None:
        return Check("store-encryption", title, "NOTE", f"{m.store_shown} does not exist yet")
    inline = any("inlinecrypt" in line.split()[5] for line in m.read("proc/self/mountinfo").splitlines()
                 if len(line.split()) > 5 and line.split()[4] in ("/", "/sysroot", "/var"))
    detail = " (inline encryption hardware in use)" if inline else ""
    if state:
        return Check("store-encryption", title, "PASS", f"fscrypt policy on {m.store_shown}{detail}")
    return Check("store-encryption", title, "WARN", f"{m.store_shown} is not encrypted",
                 "reinstall with [storage.encryption] enabled, or move the VM disks to an fscrypt directory")


CHECKS = (cpu_virtualization, kvm_device, vhost_net, tun, iommu_firmware, iommu_kernel, interrupt_remapping,
          nested, ignore_msrs, cgroups, uefi_firmware, swtpm, memory, store_space, store_encryption)


def run_checks(machine: Machine) -> list[Check]:
    """Every check. A malformed machine file (binary, wrong type, a FIFO) gives a WARN or NOTE, never a traceback."""
    out = []
    for check in CHECKS:
        try:
            out.append(check(machine))
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OSError, ArithmeticError,
                RecursionError) as exc:
            name = check.__name__.replace("_", " ")
            out.append(Check(check.__name__.replace("_", "-"), f"The {name} check could read what it needs", "WARN",
                             f"could not be checked: {type(exc).__name__}: {str(exc)[:120]}",
                             "the files this check reads are malformed: see the found value"))
    if machine.unreadable:
        listed = "; ".join(f"/{rel} {reason}" for rel, reason in sorted(machine.unreadable.items())[:8])
        out.append(Check("unreadable", "Some of this computer's files could not be read", "NOTE", listed))
    return out
