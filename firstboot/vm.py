"""The primary VM: a request + an osinfo profile + the host's facts -> :class:`VmSpec` -> libvirt domain XML.

Both steps are pure functions. :func:`plan` applies the sizing rule and records where every value came from;
:func:`domain_xml` renders the spec for the host's libvirt, emitting only what its capabilities offer.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from phyllome_installer.core.errors import UserError
from phyllome_installer.core.facts import VM_STORE

from .gpu import Gpu
from .host import GiB, HostFacts, reserve
from .osinfo import OsProfile

STRATEGIES = ("virtio-gpu-2d", "virtio-gpu-3d", "vfio-pci", "mdev", "sriov-vf")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
VMMS = ("qemu", "cloud-hypervisor")
# Hyper-V enlightenments we want for Windows (virt-install's and Phyllome's set); only those the domain
# capabilities offer are emitted. Sub-elements and newer ones (tlbflush direct/extended, reenlightenment)
# are left out: libvirt 9.0's schema rejects some of them.
HYPERV = ("relaxed", "vapic", "spinlocks", "vpindex", "runtime", "synic", "stimer", "reset", "vendor_id",
          "frequencies", "tlbflush", "ipi")
MAX_DISK = 64 << 40
"""The largest guest disk (64 TiB): more is a typo (99999TiB), refused by plan and create alike."""
MDEV_NAMESPACE = uuid.UUID("5b1c7c1e-5e0a-4b8f-9a53-70687966c1c0")


class Request(BaseModel):
    """What the user asked for; ``None`` means "choose for me"."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="desktop", pattern=NAME_PATTERN)
    memory: int | None = Field(default=None, gt=0)
    cpus: int | None = Field(default=None, ge=1, le=512)
    disk_size: int | None = Field(default=None, gt=0)
    disk_format: Literal["qcow2", "raw"] = "qcow2"
    gpu: Literal["auto", "virtio-gpu-2d", "virtio-gpu-3d", "vfio-pci", "mdev", "sriov-vf"] = "auto"
    vmm: Literal["qemu", "cloud-hypervisor"] = "qemu"
    tpm: bool | None = None
    iso: str | None = None
    store: str = VM_STORE
    serial_log: str | None = None

    @field_validator("disk_size")
    @classmethod
    def _disk(cls, value: int | None) -> int | None:
        if value is not None and value > MAX_DISK:
            raise ValueError(f"{value >> 40} TiB is more than the largest guest disk, {MAX_DISK >> 40} TiB")
        return value

    @field_validator("iso", "store", "serial_log")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError(f"{value!r} contains control characters")
        if not value.startswith("/") or "/../" in value + "/":
            raise ValueError(f"{value!r} is not an absolute path without '..'")
        if any(value == top or value.startswith(top + "/") for top in ("/proc", "/sys", "/dev")):
            raise ValueError(f"{value!r} is in /proc, /sys or /dev: not a place for VM files")
        return value.rstrip("/") or "/"


class GpuChoice(BaseModel):
    model_config = ConfigDict(frozen=True)

    strategy: Literal["virtio-gpu-2d", "virtio-gpu-3d", "vfio-pci", "mdev", "sriov-vf"]
    reason: str
    gpu: str | None = None
    """The host GPU's PCI address."""
    hostdevs: list[str] = []
    """PCI addresses given to the guest (vfio-pci: every function of the GPU's slot; sriov-vf: one VF)."""
    mdev_type: str | None = None
    mdev_uuid: str | None = None
    render_node: str | None = None


class VmSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    vmm: Literal["qemu", "cloud-hypervisor"] = "qemu"
    os: str
    os_name: str
    family: str
    memory: int
    vcpus: int
    cores: int
    threads: int
    disk: str
    disk_size: int
    disk_format: Literal["qcow2", "raw"]
    firmware: Literal["efi", "bios"]
    secure_boot: bool
    nvram: str | None
    tpm: bool
    iso: str | None
    driver_iso: str | None
    virtio: dict[str, bool]
    gpu: GpuChoice
    serial_log: str | None = None
    sources: dict[str, str]
    notes: list[str] = []

    def summary(self) -> list[tuple[str, str, str]]:
        """(setting, value, where it came from) rows for the CLI and the first-boot screen."""
        def size(n: int) -> str:
            return f"{n / GiB:.1f} GiB" if n % GiB else f"{n // GiB} GiB"
        rows = [("os", f"{self.os} ({self.os_name})", self.sources["os"]),
                ("memory", size(self.memory), self.sources["memory"]),
                ("cpus", f"{self.vcpus} (1 socket, {self.cores} core{'s' * (self.cores > 1)}, {self.threads} "
                         f"thread{'s' * (self.threads > 1)} each)", self.sources["cpus"]),
                ("disk", f"{size(self.disk_size)} {self.disk_format} at {self.disk}", self.sources["disk_size"]),
                ("firmware", self.firmware.upper() + (" + Secure Boot" if self.secure_boot else ""),
                 self.sources["firmware"]),
                ("tpm", "TPM 2.0 (tpm-crb, swtpm)" if self.tpm else "none", self.sources["tpm"]),
                ("gpu", self.gpu.strategy, self.gpu.reason),
                ("vmm", self.vmm, self.sources["vmm"])]
        if self.iso:
            rows.append(("iso", self.iso, "user"))
        if self.driver_iso:
            rows.append(("drivers", self.driver_iso, "virtio-win on the host"))
        return rows


def _gib(n: int) -> str:
    return f"{n // GiB} GiB" if n % GiB == 0 else f"{n / GiB:.1f} GiB"


def _choose_gpu(request: Request, profile: OsProfile, gpus: list[Gpu], vfs: dict[str, list[str]]) -> GpuChoice:
    """The strategy the user named, or the best one any GPU offers (firstboot/gpu.py's ranking per GPU; across
    GPUs the order of :data:`STRATEGIES` reversed, a GPU that is not the host's boot GPU first)."""
    if not gpus:
        if request.gpu not in ("auto", "virtio-gpu-2d"):
            raise UserError(f"gpu {request.gpu}: this machine has no GPU to use for it", hint="use virtio-gpu-2d")
        return GpuChoice(strategy="virtio-gpu-2d", reason="no host GPU found: 2D virtio-gpu")
    order = {name: i for i, name in enumerate(reversed(STRATEGIES))}
    def ready(gpu: Gpu, strategy) -> bool:  # auto skips SR-IOV until a virtual function is enabled
        return strategy.available and (strategy.name != "sriov-vf" or request.gpu != "auto" or vfs.get(gpu.address))

    if request.gpu == "auto":
        offers = [(g, next(s for s in g.strategies if ready(g, s))) for g in gpus]
    else:
        offers = [(g, s) for g in gpus for s in g.strategies if s.name == request.gpu and ready(g, s)]
    offers.sort(key=lambda o: (order[o[1].name], o[0].boot_vga, o[0].address))
    if not offers:
        primary = next((g for g in gpus if g.boot_vga), gpus[0])
        chosen = next((s for s in primary.strategies if s.name == request.gpu), None)
        raise UserError(f"gpu {request.gpu} is not possible for {primary.address} ({primary.name})"
                        + (f": {chosen.reason}" if chosen else ""))
    primary, strategy = offers[0]
    name = strategy.name
    reason = ("auto: " if request.gpu == "auto" else "user: ") + f"{primary.address}: {strategy.reason}"
    slot = primary.address.rsplit(".", 1)[0]
    if name == "vfio-pci":
        functions = sorted(m for m in primary.group_members if m.rsplit(".", 1)[0] == slot) or [primary.address]
        return GpuChoice(strategy=name, reason=reason, gpu=primary.address, hostdevs=functions)
    if name == "sriov-vf":
        enabled = vfs.get(primary.address, [])
        if not enabled:
            raise UserError(f"gpu sriov-vf: no virtual function of {primary.address} is enabled",
                            hint=f"echo 1 > /sys/bus/pci/devices/{primary.address}/sriov_numvfs, then plan again")
        return GpuChoice(strategy=name, reason=reason, gpu=primary.address, hostdevs=[enabled[0]])
    if name == "mdev":
        mdev_type = primary.mdev_types[0]
        mdev_uuid = str(uuid.uuid5(MDEV_NAMESPACE, f"{request.name}/{primary.address}/{mdev_type}"))
        return GpuChoice(strategy=name, reason=reason, gpu=primary.address, mdev_type=mdev_type, mdev_uuid=mdev_uuid)
    if name == "virtio-gpu-3d":
        if profile.family == "windows":
            raise UserError("gpu virtio-gpu-3d: Windows' virtio-gpu driver has no 3D acceleration",
                            hint="use virtio-gpu-2d, or a passthrough strategy")
        return GpuChoice(strategy=name, reason=reason, gpu=primary.address, render_node=primary.render_node or None)
    return GpuChoice(strategy="virtio-gpu-2d", reason=reason)


def plan(request: Request, profile: OsProfile, host: HostFacts, gpus: list[Gpu] = (),
         vfs: dict[str, list[str]] | None = None) -> VmSpec:
    """The sizing rule: the host keeps its reserve (:func:`firstboot.host.reserve`), the VM gets the rest, never
    below osinfo's minimum; a user value below the minimum is refused with the minimum named."""
    sources: dict[str, str] = {"os": profile.fallback or ("detected from the ISO" if profile.detected_from
                                                          else "user")}
    notes = [profile.fallback] if profile.fallback else []
    keep_memory, keep_cpus = reserve(host)
    minimum = profile.minimum
    what = profile.name

    if request.memory is not None:
        if minimum.memory and request.memory < minimum.memory:
            raise UserError(f"memory {_gib(request.memory)} is below {what}'s minimum of {_gib(minimum.memory)} "
                            "(osinfo-db)")
        if request.memory > host.memory:
            raise UserError(f"memory {_gib(request.memory)} is more than this host has ({_gib(host.memory)})")
        memory, sources["memory"] = request.memory, "user"
    else:
        memory = (host.memory - keep_memory) // (256 << 20) * (256 << 20)
        sources["memory"] = f"sizing rule: host memory {_gib(host.memory)} minus the host's {_gib(keep_memory)}"
        if minimum.memory and memory < minimum.memory:
            memory, sources["memory"] = minimum.memory, "osinfo minimum"
            notes.append(f"this host has {_gib(host.memory)}: the VM gets {what}'s minimum of {_gib(memory)}, and "
                         f"the host keeps less than its {_gib(keep_memory)} reserve")

    if request.cpus is not None:
        if minimum.cpus and request.cpus < minimum.cpus:
            raise UserError(f"cpus {request.cpus} is below {what}'s minimum of {minimum.cpus} (osinfo-db)")
        if request.cpus > host.cpus:
            raise UserError(f"cpus {request.cpus} is more than this host has ({host.cpus})")
        vcpus, sources["cpus"] = request.cpus, "user"
    else:
        vcpus = max(1, host.cpus - keep_cpus)
        sources["cpus"] = f"sizing rule: {host.cpus} host CPUs minus {keep_cpus} kept for the host"
        if minimum.cpus and vcpus < minimum.cpus:
            vcpus, sources["cpus"] = minimum.cpus, "osinfo minimum"
    threads = host.threads_per_core if vcpus % host.threads_per_core == 0 else 1

    if request.disk_size is not None:
        if minimum.storage and request.disk_size < minimum.storage:
            raise UserError(f"disk size {_gib(request.disk_size)} is below {what}'s minimum of "
                            f"{_gib(minimum.storage)} (osinfo-db)")
        disk_size, sources["disk_size"] = request.disk_size, "user"
    elif profile.recommended.storage:
        disk_size, sources["disk_size"] = profile.recommended.storage, profile.recommended_source["storage"]
    else:
        disk_size, sources["disk_size"] = 64 * GiB, "default: osinfo-db gives no storage size"

    windows = profile.family == "windows"
    modern_windows = windows and profile.efi_required  # Windows 11 and later: UEFI, Secure Boot, TPM 2.0
    firmware = "efi" if profile.efi and host.efi else "bios"
    if profile.efi_required and firmware != "efi":
        raise UserError(f"{what} needs UEFI, and this host's libvirt offers no UEFI firmware", hint="install ovmf")
    sources["firmware"] = ("osinfo: UEFI required" if profile.efi_required else
                           "UEFI where osinfo allows it" if firmware == "efi" else "osinfo: no UEFI support")
    secure_boot = firmware == "efi" and windows and host.secure_boot
    if secure_boot and not host.smm:
        raise UserError(f"{what} needs Secure Boot, and Secure Boot firmware needs SMM, which this machine's "
                        f"{host.domain_type.upper()} cannot give a guest ({host.accelerator_note or 'no SMM'}): "
                        "nothing was created",
                        hint="run Phyllome OS on the machine itself, not nested in another hypervisor; or, where "
                             "it must be nested, let the outer hypervisor expose SMM")
    if request.tpm is not None:
        tpm, sources["tpm"] = request.tpm, "user"
        if modern_windows and not tpm:
            raise UserError(f"{what} does not install without a TPM 2.0", hint="leave the TPM on")
    else:
        tpm, sources["tpm"] = modern_windows, ("Windows 11 requires TPM 2.0" if modern_windows else "not needed")
    if tpm and "tpm-crb" not in host.tpm_models:
        raise UserError("this host's libvirt offers no tpm-crb TPM", hint="install swtpm and swtpm-tools")
    sources["vmm"] = "user" if request.vmm != "qemu" else "default"

    store = Path(request.store)
    suffix = "qcow2" if request.disk_format == "qcow2" else "img"
    return VmSpec(
        name=request.name, vmm=request.vmm, os=profile.short_id, os_name=profile.name, family=profile.family,
        memory=memory, vcpus=vcpus, cores=vcpus // threads, threads=threads,
        disk=str(store / f"{request.name}.{suffix}"), disk_size=disk_size, disk_format=request.disk_format,
        firmware=firmware, secure_boot=secure_boot,
        nvram=str(store / f"{request.name}_VARS.fd") if firmware == "efi" else None, tpm=tpm,
        iso=request.iso, driver_iso=host.virtio_win if windows and not profile.virtio.get("block") else None,
        virtio=dict(profile.virtio), gpu=_choose_gpu(request, profile, list(gpus), vfs or {}),
        serial_log=request.serial_log, sources=sources, notes=notes)


def domain_xml(spec: VmSpec, host: HostFacts) -> str:
    """The libvirt domain XML of ``spec`` for this host (pure: same inputs, same bytes); see firstboot/vm_xml.py."""
    from .vm_xml import render

    return render(spec, host)
