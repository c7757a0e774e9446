"""A machine that boots from the network as a fleet's machines do: QEMU (q35, TCG) with OVMF, a virtio NIC first in
the boot order with Debian's iPXE ROM (ipxe-qemu), QEMU's user network with its TFTP server handing out an iPXE
script as the boot file, its own MAC address and SMBIOS serial and UUID, and a blank virtio disk to install to.
The guest reaches this machine's loopback as 10.0.2.2. Everything else is tests/boot/harness.py's UefiMachine (the
serial console, stages, the end of the console in a failure)."""

from __future__ import annotations

from pathlib import Path

from tests.boot.harness import UefiMachine

IPXE_ROM = Path("/usr/lib/ipxe/qemu/efi-virtio.rom")


class NetMachine(UefiMachine):
    def __init__(self, disk: Path, workdir: Path, *, tftp: Path, bootfile: str, mac: str, serial: str, uuid: str,
                 memory_mib: int = 2048, cpus: int = 1) -> None:
        extra = ("-netdev", f"user,id=net0,tftp={tftp},bootfile={bootfile}",
                 "-device", f"virtio-net-pci,netdev=net0,mac={mac},bootindex=0,romfile={IPXE_ROM}",
                 "-smbios", f"type=1,serial={serial},uuid={uuid}")
        super().__init__(disk, workdir, memory_mib=memory_mib, cpus=cpus, extra=extra)
