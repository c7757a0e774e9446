"""Pure: a disk and options -> the partition layout. Nothing here touches a disk.

GPT, 1 MiB aligned: ESP 600 MiB vfat, /boot 1 GiB ext4, root = the rest, F2FS with
``-O extra_attr,inode_checksum,sb_checksum,encrypt`` (+ ``compression``) or ext4 with ``-O encrypt``. The root
partition has the discoverable x86-64 root type, so systemd-gpt-auto-generator can find it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from phyllome_installer.core.errors import UserError
from phyllome_installer.core.sizes import human_size

from .probe import Disk
from .sizes import ALIGN, BOOT_SIZE, ESP_SIZE, MIN_ROOT, minimum_disk_size

GPT_TAIL = 16 * 1024 + 4096
"""The backup GPT at the end of the disk: its 16 KiB partition array and one header sector, reserved for the
largest logical sector (4096 bytes, "4Kn" disks), so one layout fits 512-byte and 4Kn disks alike."""

ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_DATA_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
ROOT_X86_64_TYPE = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
F2FS_FEATURES = ("extra_attr", "inode_checksum", "sb_checksum", "encrypt")


@dataclass(frozen=True)
class PartitionSpec:
    number: int
    role: str  # esp | boot | root
    name: str  # GPT partition name
    start: int  # bytes
    size: int  # bytes
    fstype: str
    label: str  # filesystem label
    type_guid: str
    mountpoint: str
    mkfs_options: tuple[str, ...] = ()

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True)
class Layout:
    disk: str
    disk_size: int
    root_fs: str
    partitions: tuple[PartitionSpec, ...] = field(default_factory=tuple)

    def part(self, role: str) -> PartitionSpec:
        return next(p for p in self.partitions if p.role == role)

    def describe(self) -> list[str]:
        rows = [f"{p.number}  {p.name:<11} {human_size(p.size):>10}  {p.fstype:<5} {p.mountpoint:<10} "
                f"{' '.join(p.mkfs_options)}".rstrip() for p in self.partitions]
        return [f"{self.disk} (GPT, {human_size(self.disk_size)}):", *("  " + r for r in rows)]


def plan(disk: str, disk_size: int, *, root_fs: str = "f2fs", compression: bool = False) -> Layout:
    """The layout for a disk of ``disk_size`` bytes. Raises :class:`UserError` when the disk is too small."""
    if root_fs not in ("f2fs", "ext4"):
        raise UserError(f"unsupported root filesystem {root_fs!r}: f2fs or ext4")
    if compression and root_fs != "f2fs":
        raise UserError("compression needs the f2fs root filesystem")
    needed = minimum_disk_size()
    if disk_size < needed:
        raise UserError(f"{disk} is {human_size(disk_size)}; Phyllome OS needs at least {human_size(needed)} "
                        f"(EFI {human_size(ESP_SIZE)}, /boot {human_size(BOOT_SIZE)}, root {human_size(MIN_ROOT)})")
    esp_start = ALIGN
    boot_start = esp_start + ESP_SIZE
    root_start = boot_start + BOOT_SIZE
    root_end = (disk_size - GPT_TAIL) // ALIGN * ALIGN
    if root_fs == "f2fs":
        features = F2FS_FEATURES + (("compression",) if compression else ())
        root_options: tuple[str, ...] = ("-O", ",".join(features))
    else:
        root_options = ("-O", "encrypt")
    return Layout(disk, disk_size, root_fs, (
        PartitionSpec(1, "esp", "EFI System", esp_start, ESP_SIZE, "vfat", "ESP", ESP_TYPE, "/boot/efi",
                      ("-F", "32")),
        PartitionSpec(2, "boot", "boot", boot_start, BOOT_SIZE, "ext4", "boot", LINUX_DATA_TYPE, "/boot"),
        PartitionSpec(3, "root", "root", root_start, root_end - root_start, root_fs, "root", ROOT_X86_64_TYPE, "/",
                      root_options),
    ))


def before_after(before: Disk | None, layout: Layout) -> list[str]:
    """The summary screen's and --dry-run's table: what is on the disk now, and what it will hold."""
    lines = ["Now:"]
    if before is None or not before.has_data:
        lines.append("  (empty: no partition table)")
    else:
        lines.append(f"  {before.table or before.fstype or 'unknown'} table on {before.describe()}")
        for part in before.partitions:
            what = " ".join(x for x in (part.fstype or "unformatted", part.label and f"'{part.label}'") if x)
            lines.append(f"  {part.number}  {human_size(part.size):>10}  {what}  ERASED")
        if before.os:
            lines.append(f"  holds: {', '.join(before.os)} (will be erased)")
    lines.append("After:")
    lines += layout.describe()[1:]
    return lines
