"""Writes the hand-made machine trees beside this file: `python tests/data/machines/build_fixtures.py`.

Each tree is the minimal /proc, /sys, /dev and /usr that `firstboot.checks` and `firstboot.gpu` read, for one kind
of machine named in the first-boot issue. Real machines are captured with capture.sh instead.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
OVMF = {
    "50-edk2-x86_64-secure.json": {"interface-types": ["uefi"], "targets": [{"architecture": "x86_64"}],
                                   "features": ["acpi-s3", "requires-smm", "secure-boot"]},
    "60-edk2-x86_64.json": {"interface-types": ["uefi"], "targets": [{"architecture": "x86_64"}],
                            "features": ["acpi-s3"]},
}


class Tree:
    def __init__(self, name: str) -> None:
        self.root = HERE / name
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir()

    def write(self, rel: str, text: str = "") -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def link(self, rel: str, target: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)

    def base(self, vendor: str, flags: str, ram_gib: int, cmdline: str, *, kvm: bool = True) -> None:
        vendor_id = {"intel": "GenuineIntel", "amd": "AuthenticAMD"}[vendor]
        self.write("proc/cpuinfo", f"processor\t: 0\nvendor_id\t: {vendor_id}\nflags\t\t: fpu vme de pse {flags}\n")
        self.write("proc/meminfo", f"MemTotal:       {ram_gib * 1024 * 1024} kB\n")
        self.write("proc/cmdline", cmdline + "\n")
        self.write("proc/self/mountinfo", "29 1 259:3 / / rw,relatime shared:1 - f2fs /dev/nvme0n1p3 rw\n")
        self.write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
        self.write("sys/module/kvm/parameters/ignore_msrs", "N\n")
        for node in ("dev/net/tun", "dev/vhost-net", "usr/bin/swtpm"):
            self.write(node)
        for name, descriptor in OVMF.items():
            self.write(f"usr/share/qemu/firmware/{name}", json.dumps(descriptor))
        capture = {"kvm": {"exists": kvm, **({"api_version": 12, "create_vm": True} if kvm else {})},
                   "store_free_bytes": 400 << 30, "store_encrypted": True}
        if kvm:
            self.write("dev/kvm")
        self.write("phyllome-capture.json", json.dumps(capture, indent=2))

    def iommu(self, table: str, unit: str, ecap: str | None = None) -> None:
        self.write(f"sys/firmware/acpi/tables/{table}")
        if ecap is not None:
            self.write(f"sys/class/iommu/{unit}/intel-iommu/ecap", ecap + "\n")
        else:  # a file, not an empty directory: git keeps no empty directories
            self.write(f"sys/class/iommu/{unit}/amd-iommu/features", "0x246577efa2254afa\n")

    def pci(self, address: str, cls: str, vendor: str, device: str, *, driver: str = "", group: str | None = None,
            boot_vga: bool | None = None, render: str = "", sriov: int | None = None,
            mdev: tuple[str, ...] = ()) -> None:
        base = f"sys/bus/pci/devices/{address}"
        self.write(f"{base}/class", cls + "\n")
        self.write(f"{base}/vendor", f"0x{vendor}\n")
        self.write(f"{base}/device", f"0x{device}\n")
        if driver:
            self.link(f"{base}/driver", f"../../../bus/pci/drivers/{driver}")
        if group is not None:
            self.link(f"{base}/iommu_group", f"../../../kernel/iommu_groups/{group}")
            self.write(f"sys/kernel/iommu_groups/{group}/devices/{address}")
        if boot_vga is not None:
            self.write(f"{base}/boot_vga", "1\n" if boot_vga else "0\n")
        if render:
            self.write(f"{base}/drm/{render}")
        if sriov is not None:
            self.write(f"{base}/sriov_totalvfs", f"{sriov}\n")
        for kind in mdev:
            self.write(f"{base}/mdev_supported_types/{kind}/name", kind + "\n")


def intel_laptop_gvtg() -> None:
    t = Tree("intel-laptop-gvtg")
    t.base("intel", "vmx ept", 16, "BOOT_IMAGE=/vmlinuz root=UUID=1 rw intel_iommu=on iommu=pt i915.enable_gvt=1")
    t.iommu("DMAR", "dmar0", ecap="f050da")
    t.write("sys/module/kvm_intel/parameters/nested", "Y\n")
    t.pci("0000:00:02.0", "0x030000", "8086", "3e9b", driver="i915", group="1", boot_vga=True,
          render="renderD128", mdev=("i915-GVTg_V5_4", "i915-GVTg_V5_8"))
    t.pci("0000:00:14.0", "0x0c0330", "8086", "a36d", driver="xhci_hcd", group="5")


def amd_desktop_isolated_dgpu() -> None:
    t = Tree("amd-desktop-isolated-dgpu")
    t.base("amd", "svm npt", 64, "BOOT_IMAGE=/vmlinuz root=UUID=1 rw amd_iommu=on iommu=pt rd.driver.pre=vfio-pci")
    t.iommu("IVRS", "ivhd0")
    t.write("sys/module/kvm_amd/parameters/nested", "1\n")
    t.pci("0000:00:01.1", "0x060400", "1022", "1483", driver="pcieport", group="2")
    t.pci("0000:0a:00.0", "0x030000", "1002", "73bf", driver="vfio-pci", group="15", boot_vga=False)
    t.pci("0000:0a:00.1", "0x040300", "1002", "ab28", driver="vfio-pci", group="15")
    t.pci("0000:10:00.0", "0x030000", "1002", "164e", driver="amdgpu", group="20", boot_vga=True,
          render="renderD128")


def dgpu_shares_group_with_usb() -> None:
    t = Tree("dgpu-shares-group-with-usb")
    t.base("intel", "vmx ept", 32, "BOOT_IMAGE=/vmlinuz root=UUID=1 rw intel_iommu=on iommu=pt")
    t.iommu("DMAR", "dmar0", ecap="f050da")
    t.write("sys/module/kvm_intel/parameters/nested", "Y\n")
    t.pci("0000:00:01.0", "0x060400", "8086", "1901", driver="pcieport", group="1")
    t.pci("0000:01:00.0", "0x030000", "10de", "2204", driver="nvidia", group="1", boot_vga=True,
          render="renderD128")
    t.pci("0000:01:00.1", "0x040300", "10de", "1aef", driver="snd_hda_intel", group="1")
    t.pci("0000:00:14.0", "0x0c0330", "8086", "a36d", driver="xhci_hcd", group="1")


def iommu_firmware_not_kernel() -> None:
    t = Tree("iommu-firmware-not-kernel")
    t.base("intel", "vmx ept", 32, "BOOT_IMAGE=/vmlinuz root=UUID=1 rw quiet")
    t.write("sys/firmware/acpi/tables/DMAR")
    t.write("sys/module/kvm_intel/parameters/nested", "N\n")
    t.pci("0000:00:02.0", "0x030000", "8086", "9bc5", driver="i915", boot_vga=True, render="renderD128")


def no_virtualization() -> None:
    t = Tree("no-virtualization")
    t.base("intel", "sse2 ssse3", 8, "BOOT_IMAGE=/vmlinuz root=UUID=1 rw", kvm=False)
    t.pci("0000:00:02.0", "0x030000", "8086", "0166", driver="i915", boot_vga=True, render="renderD128")


def sriov_gpu() -> None:
    t = Tree("sriov-gpu")
    t.base("intel", "vmx ept", 32, "BOOT_IMAGE=/vmlinuz root=UUID=1 rw intel_iommu=on iommu=pt i915.max_vfs=7")
    t.iommu("DMAR", "dmar0", ecap="f050da")
    t.write("sys/module/kvm_intel/parameters/nested", "Y\n")
    t.pci("0000:00:02.0", "0x030000", "8086", "a7a0", driver="i915", group="0", boot_vga=True,
          render="renderD128", sriov=7)


if __name__ == "__main__":
    for build in (intel_laptop_gvtg, amd_desktop_isolated_dgpu, dgpu_shares_group_with_usb,
                  iommu_firmware_not_kernel, no_virtualization, sriov_gpu):
        build()
        print("wrote", build.__name__)
