"""Cloud Hypervisor, the alternative VMM: the same :class:`~firstboot.vm.VmSpec` as a domain for libvirt's ch
driver (``ch:///system``). The driver's domains are ``type='kvm'`` (Cloud Hypervisor runs on KVM): libvirt 9.0's
schema has no ``type='ch'``; the driver is chosen by the connection URI, not by the domain type.

Status: Fedora ships the driver (libvirt-daemon-driver-ch) and cloud-hypervisor; Debian 12 has neither, and
Cloud Hypervisor needs KVM, so here only the XML (golden file + virt-xml-validate) and the refusals are tested.
What it cannot do is refused at plan time: Windows (it needs Cloud Hypervisor's own UEFI firmware and a TPM),
any emulated display (no SPICE/VNC, no virtio-gpu: only a passed-through GPU shows anything), a TPM, mediated
devices; raw disks only through this driver.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from phyllome_installer.core.errors import InstallFailure, UserError

from .osinfo import OsProfile

#: edk2 built for Cloud Hypervisor (boots UEFI guests from a virtio disk); the libvirt ch driver loads it as
#: the domain's <kernel>. The path is the one we expect from a distribution package; not verifiable on Debian 12.
CH_FIRMWARE = "/usr/share/cloud-hypervisor/CLOUDHV.fd"


def check_ch(request, profile: OsProfile) -> None:
    """Refuse, before anything is planned, what libvirt's ch driver cannot give this VM."""
    problems = []
    if profile.family == "windows":
        problems.append(f"{profile.name} needs Cloud Hypervisor's UEFI firmware with Secure Boot variables and "
                        "a TPM 2.0, which libvirt's ch driver does not set up")
    if request.gpu in ("auto", "virtio-gpu-2d", "virtio-gpu-3d"):
        problems.append("Cloud Hypervisor has no emulated display (no SPICE or VNC, no virtio-gpu): give the guest "
                        "a GPU with gpu = \"vfio-pci\"")
    if request.gpu in ("mdev", "sriov-vf"):
        problems.append(f"gpu {request.gpu} is not supported by libvirt's ch driver; use vfio-pci")
    if request.tpm:
        problems.append("libvirt's ch driver cannot attach a TPM")
    if request.disk_format != "raw":
        problems.append("libvirt's ch driver takes raw disks: use disk_format = \"raw\"")
    if problems:
        raise UserError("vmm cloud-hypervisor cannot run this VM: " + "; ".join(problems),
                        hint="use vmm = \"qemu\" (the default)")


def require_ch_driver(conn, uri: str) -> None:
    if conn.getType().lower() not in ("ch", "cloud-hypervisor"):
        raise InstallFailure(f"{uri} is not libvirt's Cloud Hypervisor driver ({conn.getType()})",
                             hint="connect with --uri ch:///system; Debian 12 does not ship the ch driver")


def connect_refusal(uri: str, exc: Exception) -> InstallFailure:
    return InstallFailure(f"libvirt's Cloud Hypervisor driver is not available at {uri}: {exc}",
                          hint="install libvirt-daemon-driver-ch and cloud-hypervisor (Fedora); Debian 12 has "
                          "neither; nothing was created")


def ch_domain_xml(spec) -> str:
    root = ET.Element("domain", type="kvm")  # the ch driver's only domain type (see the module docstring)
    ET.SubElement(root, "name").text = spec.name
    ET.SubElement(root, "memory", unit="KiB").text = str(spec.memory // 1024)
    ET.SubElement(root, "vcpu", placement="static").text = str(spec.vcpus)
    os_node = ET.SubElement(root, "os")
    ET.SubElement(os_node, "type", arch="x86_64").text = "hvm"
    ET.SubElement(os_node, "kernel").text = CH_FIRMWARE
    cpu = ET.SubElement(root, "cpu")
    ET.SubElement(cpu, "topology", sockets="1", dies="1", cores=str(spec.cores), threads=str(spec.threads))
    ET.SubElement(root, "on_poweroff").text = "destroy"
    ET.SubElement(root, "on_reboot").text = "restart"
    ET.SubElement(root, "on_crash").text = "destroy"
    devices = ET.SubElement(root, "devices")
    disks = [(spec.disk, "vda", False)] + ([(spec.iso, "vdb", True)] if spec.iso else [])
    for path, dev, readonly in disks:
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="raw")
        ET.SubElement(disk, "source", file=path)
        ET.SubElement(disk, "target", dev=dev, bus="virtio")
        if readonly:
            ET.SubElement(disk, "readonly")
    interface = ET.SubElement(devices, "interface", type="ethernet")
    ET.SubElement(interface, "model", type="virtio")
    for address in spec.gpu.hostdevs:
        hostdev = ET.SubElement(devices, "hostdev", mode="subsystem", type="pci", managed="yes")
        domain, bus, rest = address.split(":")
        slot, function = rest.split(".")
        ET.SubElement(ET.SubElement(hostdev, "source"), "address", domain=f"0x{domain}", bus=f"0x{bus}",
                      slot=f"0x{slot}", function=f"0x{function}")
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "target", port="0")
    ET.SubElement(devices, "console", type="pty")
    ET.indent(root, "  ")
    return ET.tostring(root, encoding="unicode") + "\n"
