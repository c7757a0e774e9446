"""The disks of the machine as typed data, and the machine profile (``phyllome-install probe --json``).

Read from sysfs, ``/proc/self/mountinfo``, ``/proc/swaps`` and ``blkid -p`` (low-level probing, no cache and no
udev needed; this machine runs without udev). The roots of ``/sys``, ``/proc`` and ``/dev`` are injectable, and
so is the runner, so a saved tree or a test can stand in for real hardware. blivet is not used here: it is slow
to reset and it is only needed to change disks (see ``apply.py``).

Flags, each with a reason a user can read: ``boot_medium`` (holds the running system), ``busy`` (mounted,
swapped on, or held by device-mapper/md), ``read_only``, ``too_small``. A disk with any flag is never a target.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from phyllome_installer.core import mountinfo
from phyllome_installer.core.facts import cpu_vendor, mem_total_field
from phyllome_installer.core.runner import Runner
from phyllome_installer.core.sizes import human_size

from .sizes import MIN_DISK_BYTES

log = logging.getLogger("phyllome.storage.probe")

#: ESP 600 MiB + /boot 1 GiB + a root of at least 8 GiB, plus alignment: see sizes.py.
PROFILE_VERSION = 1
#: Mount points that belong to the running live system; their devices are the boot medium.
SYSTEM_MOUNTS = ("/", "/run/initramfs/live", "/run/install/repo", "/run/rootfsbase", "/boot", "/boot/efi",
                 "/usr", "/var")

Transport = Literal["nvme", "sata", "sas", "scsi", "usb", "virtio", "mmc", "loop", "unknown"]
Flag = Literal["boot_medium", "busy", "read_only", "too_small"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Partition(_Model):
    number: int
    path: str
    size: int
    fstype: str = ""
    label: str = ""
    uuid: str = ""
    part_label: str = ""
    part_type: str = ""
    """GPT partition type GUID (upper case) or MBR type."""
    mountpoint: str = ""


class Disk(_Model):
    path: str
    name: str
    by_id: list[str] = Field(default_factory=list)
    model: str = ""
    serial: str = ""
    size: int
    transport: Transport = "unknown"
    removable: bool = False
    rotational: bool = False
    read_only: bool = False
    table: str = ""
    """Partition table type: gpt, dos, or empty."""
    fstype: str = ""
    """A filesystem written on the whole disk, without a partition table."""
    partitions: list[Partition] = Field(default_factory=list)
    os: list[str] = Field(default_factory=list)
    """Operating systems guessed from what is on the disk."""
    flags: dict[Flag, str] = Field(default_factory=dict)
    """Why this disk cannot be a target: flag -> reason."""
    identity: str = ""
    """What this disk is, whatever its path: "serial:...", else "by-id:...", else (a loop device) "file:DEV:INODE"
    of its backing file; empty when nothing but the path names it. Consent to erase is bound to it."""

    @property
    def usable(self) -> bool:
        return not self.flags

    @property
    def has_data(self) -> bool:
        return bool(self.partitions or self.table or self.fstype)

    def names(self) -> set[str]:
        """Every name a user may use for this disk."""
        return {self.path, self.name, *self.by_id, *(os.path.basename(b) for b in self.by_id)}

    def describe(self) -> str:
        bits = [self.path, self.model or "unknown model", human_size(self.size)]
        if self.serial:
            bits.append(f"serial {self.serial}")
        return ", ".join(bits)


class MachineProfile(_Model):
    version: int = PROFILE_VERSION
    cpu_vendor: Literal["intel", "amd", "other"] = "other"
    firmware: Literal["uefi", "bios"] = "bios"
    ram_bytes: int = 0
    disks: list[Disk] = Field(default_factory=list)

    def disk(self, name: str) -> Disk | None:
        for disk in self.disks:
            if name in disk.names():
                return disk
        return None


def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return default


def _identity(entry: Path, serial: str, by_id: list[str]) -> str:
    if serial:
        return f"serial:{serial}"
    if by_id:
        return f"by-id:{os.path.basename(sorted(by_id)[0])}"
    backing = _read(entry / "loop" / "backing_file").removesuffix(" (deleted)")
    if backing:
        try:
            info = os.stat(backing)
        except OSError:
            return ""
        return f"file:{info.st_dev}:{info.st_ino}"
    return ""


def blkid_export(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value
    return values


class Prober:
    """Reads the machine. ``include_loop`` makes attached loop devices count as disks (tests, sandbox)."""

    def __init__(self, runner: Runner, *, sys_root: Path = Path("/sys"), proc_root: Path = Path("/proc"),
                 dev_root: Path = Path("/dev"), include_loop: bool = False,
                 only: Iterable[str] | None = None) -> None:
        self.runner = runner
        self.sys = sys_root
        self.proc = proc_root
        self.dev = dev_root
        self.include_loop = include_loop
        self.only = {os.path.basename(n) for n in only} if only is not None else None

    # ------------------------------------------------------------------ machine
    def profile(self) -> MachineProfile:
        return MachineProfile(cpu_vendor=self.cpu_vendor(), firmware=self.firmware(), ram_bytes=self.ram(),
                              disks=self.disks())

    def cpu_vendor(self) -> Literal["intel", "amd", "other"]:
        return cpu_vendor(_read(self.proc / "cpuinfo"))

    def firmware(self) -> Literal["uefi", "bios"]:
        return "uefi" if (self.sys / "firmware" / "efi").is_dir() else "bios"

    def ram(self) -> int:
        kib = mem_total_field(_read(self.proc / "meminfo"))
        return int(kib) * 1024 if kib else 0

    # ------------------------------------------------------------------ disks
    def disks(self) -> list[Disk]:
        mounts = self._mounts()
        swaps = self._swaps()
        system = self._system_devices(mounts)
        disks = []
        for entry in sorted((self.sys / "block").iterdir(), key=lambda p: p.name):
            name = entry.name
            if self.only is not None and name not in self.only:
                continue
            if not self._is_candidate(entry):
                continue
            disks.append(self._disk(entry, mounts, swaps, system))
        return disks

    def _is_candidate(self, entry: Path) -> bool:
        name = entry.name
        if name.startswith(("ram", "zram", "dm-", "md", "sr", "fd", "nbd")):
            return False
        if name.startswith("loop"):
            return self.include_loop and (entry / "loop" / "backing_file").exists()
        return _read(entry / "size", "0") != "0"

    def _disk(self, entry: Path, mounts: dict[str, str], swaps: set[str], system: dict[str, str]) -> Disk:
        name = entry.name
        path = str(self.dev / name)
        size = int(_read(entry / "size", "0")) * 512
        numbers = {}
        for child in entry.iterdir():
            if (child / "partition").exists():
                numbers[child.name] = int(_read(child / "partition", "0"))
        partitions = []
        for child_name, number in sorted(numbers.items(), key=lambda item: item[1]):
            child = entry / child_name
            dev = _read(child / "dev")
            info = self._blkid(str(self.dev / child_name))
            partitions.append(Partition(
                number=number, path=str(self.dev / child_name), size=int(_read(child / "size", "0")) * 512,
                fstype=info.get("TYPE", ""), label=info.get("LABEL", ""), uuid=info.get("UUID", ""),
                part_label=info.get("PART_ENTRY_NAME", ""), part_type=info.get("PART_ENTRY_TYPE", "").upper(),
                mountpoint=mounts.get(dev, ""),
            ))
        disk_info = self._blkid(path)
        flags: dict[Flag, str] = {}
        devs = {_read(entry / "dev"): name} | {_read(entry / c / "dev"): c for c in numbers}
        for dev, dev_name in devs.items():
            if dev in system and "boot_medium" not in flags:
                flags["boot_medium"] = f"holds the running system ({dev_name} is {system[dev]})"
        for dev, dev_name in devs.items():
            if "busy" in flags:
                break
            if dev in mounts:
                flags["busy"] = f"{dev_name} is mounted on {mounts[dev]}"
            elif str(self.dev / dev_name) in swaps:
                flags["busy"] = f"{dev_name} is in use as swap"
        if "busy" not in flags:
            for dev_name in (name, *numbers):
                holders = entry / dev_name / "holders" if dev_name != name else entry / "holders"
                held = sorted(os.listdir(holders)) if holders.is_dir() else []
                if held:
                    flags["busy"] = f"{dev_name} is held by {', '.join(held)}"
                    break
        if "busy" not in flags and name.startswith("loop"):
            twin = self._mounted_twin(entry, mounts)
            if twin:
                flags["busy"] = twin
        if _read(entry / "ro") == "1":
            flags["read_only"] = "the disk is read-only"
        if size < MIN_DISK_BYTES:
            flags["too_small"] = f"{human_size(size)} is less than the {human_size(MIN_DISK_BYTES)} needed"
        serial, by_id = self._serial(entry), self._by_id(name)
        return Disk(
            identity=_identity(entry, serial, by_id),
            path=path, name=name, by_id=by_id, model=self._model(entry), serial=serial,
            size=size, transport=self._transport(entry), removable=_read(entry / "removable") == "1",
            rotational=_read(entry / "queue" / "rotational") == "1", read_only=_read(entry / "ro") == "1",
            table=disk_info.get("PTTYPE", ""), fstype=disk_info.get("TYPE", ""), partitions=partitions,
            os=self._guess_os(partitions), flags=flags,
        )

    def _mounted_twin(self, entry: Path, mounts: dict[str, str]) -> str:
        """The same image file attached through another loop device, with a partition mounted there."""
        try:
            me = os.stat(_read(entry / "loop" / "backing_file").removesuffix(" (deleted)"))
        except OSError:
            return ""
        for other in sorted((self.sys / "block").glob("loop*")):
            if other.name == entry.name:
                continue
            try:
                info = os.stat(_read(other / "loop" / "backing_file").removesuffix(" (deleted)"))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) != (me.st_dev, me.st_ino):
                continue
            for dev_entry in [other, *sorted(other.glob(f"{other.name}p*"))]:
                where = mounts.get(_read(dev_entry / "dev"))
                if where:
                    return (f"the same image is attached as {other.name}, and {dev_entry.name} is mounted on "
                            f"{where}")
        return ""

    def _blkid(self, device: str) -> dict[str, str]:
        result = self.runner.run(["blkid", "-p", "-o", "export", device], check=False)
        return blkid_export(result.stdout) if result.ok else {}

    def _model(self, entry: Path) -> str:
        if entry.name.startswith("loop"):
            return "Loop device (" + os.path.basename(_read(entry / "loop" / "backing_file")) + ")"
        for rel in ("device/model", "device/name"):
            value = _read(entry / rel)
            if value:
                return " ".join(value.split())
        vendor = _read(entry / "device" / "vendor")
        return {"0x1af4": "Virtio disk"}.get(vendor, vendor)

    def _serial(self, entry: Path) -> str:
        for rel in ("device/serial", "serial", "device/wwid"):
            value = _read(entry / rel)
            if value:
                return value.strip()
        vpd = entry / "device" / "vpd_pg80"
        try:
            raw = vpd.read_bytes()
            return raw[4:].decode("ascii", "replace").strip()
        except OSError:
            return ""

    def _transport(self, entry: Path) -> Transport:
        name = entry.name
        if name.startswith("nvme"):
            return "nvme"
        if name.startswith("vd"):
            return "virtio"
        if name.startswith("loop"):
            return "loop"
        if name.startswith("mmcblk"):
            return "mmc"
        real = os.path.realpath(entry)
        if "/usb" in real:
            return "usb"
        if "/ata" in real:
            return "sata"
        if "/virtio" in real:
            return "virtio"
        if "/sas" in real or "/end_device" in real:
            return "sas"
        return "scsi" if name.startswith("sd") else "unknown"

    def _by_id(self, name: str) -> list[str]:
        folder = self.dev / "disk" / "by-id"
        if not folder.is_dir():
            return []
        return sorted(str(link) for link in folder.iterdir() if os.path.basename(os.path.realpath(link)) == name)

    # ------------------------------------------------------------------ what is in use
    def _mounts(self) -> dict[str, str]:
        """major:minor -> mount point (the first one) of every mounted block device."""
        mounts: dict[str, str] = {}
        for mount in mountinfo.parse(_read(self.proc / "self" / "mountinfo")):
            if not mount.device.startswith("0:"):
                mounts.setdefault(mount.device, mount.point)
        return mounts

    def _swaps(self) -> set[str]:
        lines = _read(self.proc / "swaps").splitlines()[1:]
        return {line.split()[0] for line in lines if line.split()}

    def _system_devices(self, mounts: dict[str, str]) -> dict[str, str]:
        """major:minor -> why, for every block device under the running system (through loop and dm)."""
        system: dict[str, str] = {}
        pending = [(dev, f"mounted on {where}") for dev, where in mounts.items() if where in SYSTEM_MOUNTS]
        while pending:
            dev, why = pending.pop()
            if dev in system:
                continue
            system[dev] = why
            block = self.sys / "dev" / "block" / dev
            for slave in (os.listdir(block / "slaves") if (block / "slaves").is_dir() else []):
                pending.append((_read(self.sys / "class" / "block" / slave / "dev"), why))
            backing = _read(block / "loop" / "backing_file")
            if backing:
                holder = self._device_of_file(backing, mounts)
                if holder:
                    pending.append((holder, why))
            if (block / "partition").exists():
                parent = os.path.basename(os.path.dirname(os.path.realpath(block)))
                pending.append((_read(self.sys / "class" / "block" / parent / "dev"), why))
        return system

    def _device_of_file(self, path: str, mounts: dict[str, str]) -> str | None:
        best = ("", None)
        for dev, where in mounts.items():
            if (path == where or path.startswith(where.rstrip("/") + "/")) and len(where) > len(best[0]):
                best = (where, dev)
        return best[1]

    # ------------------------------------------------------------------ what is on it
    def _guess_os(self, partitions: list[Partition]) -> list[str]:
        """Operating systems on the disk: boot entries in an ESP, os-release in ext filesystems, known types.

        Nothing is mounted: ``mdir`` (mtools) reads FAT and ``debugfs`` reads ext2/3/4 straight from the device.
        """
        found: list[str] = []
        for part in partitions:
            for guess in self._guesses(part):
                if guess not in found:
                    found.append(guess)
        return found

    def _guesses(self, part: Partition) -> list[str]:
        if part.fstype == "vfat":
            result = self.runner.run(["mdir", "-b", "-i", part.path, "::/EFI"], check=False,
                                     env={"MTOOLS_SKIP_CHECK": "1"})
            names = [line.rstrip("/").rsplit("/", 1)[-1] for line in result.stdout.splitlines()] if result.ok else []
            return [ESP_VENDORS.get(name.lower(), name) for name in names if name.upper() != "BOOT"]
        if part.fstype in ("ext2", "ext3", "ext4"):
            for release in ("/etc/os-release", "/usr/lib/os-release"):
                text = self.runner.run(["debugfs", "-R", f"cat {release}", part.path], check=False).stdout
                for key in ("PRETTY_NAME", "NAME"):
                    match = re.search(rf'^{key}="?([^"\n]+)"?', text, re.MULTILINE)
                    if match:
                        return [match.group(1)]
        if part.fstype in ("ntfs", "BitLocker") or part.part_type == WINDOWS_RESERVED:
            return ["Windows"]
        if part.fstype in ("apfs", "hfsplus"):
            return ["macOS"]
        if part.fstype in ("ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs"):
            return ["Linux"]
        return []


WINDOWS_RESERVED = "E3C9E316-0B5C-4DB8-817D-F92DF00215AE"
#: Directory names under ESP/EFI and the system they belong to.
ESP_VENDORS = {"microsoft": "Windows", "fedora": "Fedora", "ubuntu": "Ubuntu", "debian": "Debian",
               "opensuse": "openSUSE", "centos": "CentOS", "redhat": "Red Hat Enterprise Linux",
               "arch": "Arch Linux", "manjaro": "Manjaro", "pop": "Pop!_OS", "phyllome": "Phyllome OS",
               "apple": "macOS", "refind": "rEFInd", "systemd": "systemd-boot"}
