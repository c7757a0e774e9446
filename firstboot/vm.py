"""The primary VM: a request + an osinfo profile + the host's facts -> :class:`VmSpec` -> libvirt domain XML.

Both steps are pure functions. :func:`plan` applies the sizing rule and records where every value came from;
:func:`domain_xml` renders the spec for the host's libvirt, emitting only what its capabilities offer.
The models (:class:`Request`, :class:`VmSpec`) live in spec.py, which the renderers import too.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from phyllome_installer.core.errors import UserError
from phyllome_installer.core.sizes import GiB, gib_text

from .gpu import Gpu
from .host import HostFacts, reserve
from .osinfo import OsProfile
from .spec import MDEV_NAMESPACE, STRATEGIES, GpuChoice, Request, VmSpec
from .vm_xml import render


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
            raise UserError(f"memory {gib_text(request.memory)} is below {what}'s minimum of "
                            f"{gib_text(minimum.memory)} (osinfo-db)")
        if request.memory > host.memory:
            raise UserError(f"memory {gib_text(request.memory)} is more than this host has ({gib_text(host.memory)})")
        memory, sources["memory"] = request.memory, "user"
    else:
        memory = (host.memory - keep_memory) // (256 << 20) * (256 << 20)
        sources["memory"] = f"sizing rule: host memory {gib_text(host.memory)} minus the host's {gib_text(keep_memory)}"
        if minimum.memory and memory < minimum.memory:
            memory, sources["memory"] = minimum.memory, "osinfo minimum"
            notes.append(f"this host has {gib_text(host.memory)}: the VM gets {what}'s minimum of "
                         f"{gib_text(memory)}, and the host keeps less than its {gib_text(keep_memory)} reserve")

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
            raise UserError(f"disk size {gib_text(request.disk_size)} is below {what}'s minimum of "
                            f"{gib_text(minimum.storage)} (osinfo-db)")
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
    return render(spec, host)
