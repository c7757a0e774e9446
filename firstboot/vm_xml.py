"""libvirt domain XML for a :class:`~firstboot.vm.VmSpec`: only what the host's libvirt offers (its domain
capabilities and version), so the result passes its schema and its driver. Pure: same inputs, same bytes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .host import HostFacts
from .spec import HYPERV, VmSpec

#: libvirt versions (major * 1_000_000 + minor * 1_000) that introduced what is emitted conditionally
HYPERV_MODE = 8_000_000  # <hyperv mode='custom'>
FIRMWARE_FEATURES = 7_002_000  # <os><firmware><feature .../></firmware>


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    node = ET.SubElement(parent, tag, attrs)
    if text is not None:
        node.text = text
    return node


def _pci(parent: ET.Element, address: str) -> None:
    domain, bus, rest = address.split(":")
    slot, function = rest.split(".")
    _sub(parent, "address", domain=f"0x{domain}", bus=f"0x{bus}", slot=f"0x{slot}", function=f"0x{function}")


def _cdrom(devices: ET.Element, path: str, dev: str, boot: str | None) -> None:
    disk = _sub(devices, "disk", type="file", device="cdrom")
    _sub(disk, "driver", name="qemu", type="raw")
    _sub(disk, "source", file=path)
    _sub(disk, "target", dev=dev, bus="sata")
    _sub(disk, "readonly")
    if boot:
        _sub(disk, "boot", order=boot)


def _graphics(devices: ET.Element, spec: VmSpec, host: HostFacts) -> None:
    strategy = spec.gpu.strategy
    if strategy == "vfio-pci":
        _sub(_sub(devices, "video"), "model", type="none")  # the guest drives the real GPU and its outputs
        return
    spice = "spice" in host.graphics
    graphics = _sub(devices, "graphics", type="spice" if spice else "vnc")
    if strategy == "virtio-gpu-3d":
        _sub(graphics, "listen", type="none")
        gl = {"enable": "yes"} | ({"rendernode": spec.gpu.render_node} if spec.gpu.render_node else {})
        _sub(graphics, "gl", **gl)
    else:
        graphics.set("autoport", "yes")
        _sub(graphics, "listen", type="address", address="127.0.0.1")
    model = _sub(_sub(devices, "video"), "model", type="virtio", heads="1", primary="yes")
    if strategy == "virtio-gpu-3d":
        _sub(model, "acceleration", accel3d="yes")
    if spice:
        _sub(devices, "sound", model="ich9")
        channel = _sub(devices, "channel", type="spicevmc")
        _sub(channel, "target", type="virtio", name="com.redhat.spice.0")
        for _ in range(2):
            _sub(devices, "redirdev", bus="usb", type="spicevmc")


def render(spec: VmSpec, host: HostFacts) -> str:
    """The libvirt domain XML of ``spec`` for this host."""
    if spec.vmm != "qemu":
        from .vm_ch import ch_domain_xml

        return ch_domain_xml(spec)
    windows = spec.family == "windows"
    root = ET.Element("domain", type=host.domain_type)
    _sub(root, "name", spec.name)
    _sub(root, "memory", str(spec.memory // 1024), unit="KiB")
    if host.memfd:
        backing = _sub(root, "memoryBacking")
        _sub(backing, "source", type="memfd")
        _sub(backing, "access", mode="shared")
    _sub(root, "vcpu", str(spec.vcpus), placement="static")
    os_node = _sub(root, "os", **({"firmware": "efi"} if spec.firmware == "efi" else {}))
    _sub(os_node, "type", "hvm", arch="x86_64", machine="q35")
    if spec.firmware == "efi" and host.libvirt_version >= FIRMWARE_FEATURES:
        firmware = _sub(os_node, "firmware")
        if spec.secure_boot:
            _sub(firmware, "feature", enabled="yes", name="secure-boot")
            _sub(firmware, "feature", enabled="yes", name="enrolled-keys")
        else:
            _sub(firmware, "feature", enabled="no", name="secure-boot")
    if spec.nvram:
        _sub(os_node, "nvram", spec.nvram)
    features = _sub(root, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if windows:
        offered = [f for f in HYPERV if f in host.hyperv]
        if offered:
            hyperv = _sub(features, "hyperv", **({"mode": "custom"} if host.libvirt_version >= HYPERV_MODE else {}))
            for name in offered:
                extra = {"spinlocks": {"retries": "8191"}, "vendor_id": {"value": "phyllome"}}.get(name, {})
                _sub(hyperv, name, state="on", **extra)
    if spec.secure_boot:
        _sub(features, "smm", state="on")
    _sub(features, "vmport", state="off")
    mode = next((m for m in ("host-passthrough", "host-model", "maximum") if m in host.cpu_modes), None)
    cpu = _sub(root, "cpu", **({"mode": mode} if mode else {}))
    _sub(cpu, "topology", sockets="1", dies="1", cores=str(spec.cores), threads=str(spec.threads))
    clock = _sub(root, "clock", offset="localtime" if windows else "utc")
    _sub(clock, "timer", name="rtc", tickpolicy="catchup")
    _sub(clock, "timer", name="pit", tickpolicy="delay")
    _sub(clock, "timer", name="hpet", present="no")
    if windows:
        _sub(clock, "timer", name="hypervclock", present="yes")
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "restart")
    _sub(root, "on_crash", "destroy")
    pm = _sub(root, "pm")
    _sub(pm, "suspend-to-mem", enabled="no")
    _sub(pm, "suspend-to-disk", enabled="no")

    devices = _sub(root, "devices")
    _sub(devices, "emulator", host.emulator)
    virtio_disk = spec.virtio.get("block", False)
    disk = _sub(devices, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type=spec.disk_format, discard="unmap")
    _sub(disk, "source", file=spec.disk)
    _sub(disk, "target", dev="vda" if virtio_disk else "sda", bus="virtio" if virtio_disk else "sata")
    _sub(disk, "boot", order="2" if spec.iso else "1")
    if spec.iso:
        _cdrom(devices, spec.iso, "sdb", "1")
    if spec.driver_iso:
        _cdrom(devices, spec.driver_iso, "sdc", None)
    _sub(devices, "controller", type="usb", model="qemu-xhci", ports="15")
    if host.network:
        interface = _sub(devices, "interface", type="network")
        _sub(interface, "source", network="default")
    else:
        interface = _sub(devices, "interface", type="user")
    _sub(interface, "model", type="virtio" if spec.virtio.get("net") else "e1000e")
    bus = "virtio" if spec.virtio.get("input") else "usb"
    _sub(devices, "input", type="tablet", bus="usb")
    _sub(devices, "input", type="keyboard", bus=bus)
    serial = _sub(devices, "serial", type="pty")
    if spec.serial_log:
        _sub(serial, "log", file=spec.serial_log, append="off")
    _sub(devices, "console", type="pty")
    agent = _sub(devices, "channel", type="unix")
    _sub(agent, "target", type="virtio", name="org.qemu.guest_agent.0")
    _graphics(devices, spec, host)
    for address in spec.gpu.hostdevs:
        hostdev = _sub(devices, "hostdev", mode="subsystem", type="pci", managed="yes")
        _pci(_sub(hostdev, "source"), address)
    if spec.gpu.strategy == "mdev":
        hostdev = _sub(devices, "hostdev", mode="subsystem", type="mdev", managed="no", model="vfio-pci",
                       display="off")
        _sub(_sub(hostdev, "source"), "address", uuid=spec.gpu.mdev_uuid)
    if spec.tpm:
        tpm = _sub(devices, "tpm", model="tpm-crb")
        _sub(tpm, "backend", type="emulator", version="2.0")
    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    _sub(devices, "memballoon", model="none")
    ET.indent(root, "  ")
    return ET.tostring(root, encoding="unicode") + "\n"
