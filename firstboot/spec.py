"""The primary VM's request and spec: what the user asked for (:class:`Request`), the GPU chosen
(:class:`GpuChoice`) and the whole machine (:class:`VmSpec`). vm.py plans a spec, vm_xml.py and vm_ch.py render it.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from phyllome_installer.core.facts import (
    GPU_STRATEGIES,
    VM_NAME_PATTERN,
    VM_STORE,
    GpuRequest,
    GpuStrategy,
    Vmm,
    pci_address,
)
from phyllome_installer.core.sizes import gib_text

STRATEGIES = GPU_STRATEGIES
NAME_PATTERN = VM_NAME_PATTERN
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
    gpu: GpuRequest = "auto"
    gpu_address: str | None = None
    """The host GPU to use (its PCI address) where the machine has several; None: the best one offered."""
    vmm: Vmm = "qemu"
    tpm: bool | None = None
    iso: str | None = None
    store: str = VM_STORE
    serial_log: str | None = None

    @field_validator("gpu_address")
    @classmethod
    def _gpu_address(cls, value: str | None) -> str | None:
        return None if value is None else pci_address(value)

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

    strategy: GpuStrategy
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
    vmm: Vmm = "qemu"
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
        rows = [("os", f"{self.os} ({self.os_name})", self.sources["os"]),
                ("memory", gib_text(self.memory), self.sources["memory"]),
                ("cpus", f"{self.vcpus} (1 socket, {self.cores} core{'s' * (self.cores > 1)}, {self.threads} "
                         f"thread{'s' * (self.threads > 1)} each)", self.sources["cpus"]),
                ("disk", f"{gib_text(self.disk_size)} {self.disk_format} at {self.disk}", self.sources["disk_size"]),
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
