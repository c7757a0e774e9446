"""Apply a layout to the target disk with blivet, then fix and verify it with the real tools.

Order, each step a progress event:
1. re-probe the target right before writing (it may have changed since it was chosen) and refuse it if it is
   now the boot medium, busy, read-only, too small, or another disk than the one the user agreed to erase;
2. blivet: remove what is on the disk, a GPT label, the three partitions at their exact sectors, their formats;
   ``do_it()`` with blivet's progress callbacks forwarded as progress events;
3. GPT type GUIDs and names set with ``sfdisk --part-type/--part-label --no-tell-kernel``, then ``partx -u`` (no
   udev here);
4. verification with ``sfdisk -J`` and ``blkid -p``: starts, sizes, types, names, filesystems, labels.

blivet only ever sees the target (``exclusive_disks``). Loop devices are disks for blivet only when asked
(sandbox and tests): its loop populator is then removed, as DESIGN.md section 4 explains.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from phyllome_installer.core import mountinfo
from phyllome_installer.core.errors import InstallFailure, UserError
from phyllome_installer.core.progress import TaskProgress
from phyllome_installer.core.runner import Runner
from phyllome_installer.core.sinks import NullSink, Sink
from phyllome_installer.core.sizes import SECTOR
from phyllome_installer.core.targetfs import TargetFiles

from .layout import Layout, PartitionSpec
from .probe import Disk, Prober, blkid_export

log = logging.getLogger("phyllome.storage.apply")
_APPLY_LOCK = threading.Lock()  # one apply at a time


@dataclass(frozen=True)
class Applied:
    """What is on the disk after apply: partition device paths and filesystem UUIDs, by role."""

    devices: dict[str, str]
    uuids: dict[str, str]


def partition_path(disk: str, number: int) -> str:
    return f"{disk}p{number}" if disk[-1].isdigit() else f"{disk}{number}"


def recheck(prober: Prober, expected: Disk) -> Disk:
    """Probe the target again right before writing; refuse it if it changed or became unsafe."""
    now = next((d for d in prober.disks() if d.path == expected.path), None)
    if now is None:
        raise UserError(f"{expected.path} is gone: it was chosen as the target but is no longer attached")
    if (now.size, now.serial, now.model) != (expected.size, expected.serial, expected.model):
        raise UserError(f"{expected.path} changed since it was chosen (was {expected.describe()}, now "
                        f"{now.describe()}); nothing was written")
    if now.flags:
        raise UserError(f"{now.path} cannot be the target: " + "; ".join(now.flags.values()))
    return now


class BlivetApplier:
    def __init__(self, runner: Runner, sink: Sink | None = None, *, include_loop: bool = False,
                 task: str = "partition", dry: bool = False) -> None:
        """``dry``: the runner only prints (a dry run): no re-probe, and the verification shows placeholders."""
        self.runner = runner
        self.sink = sink or NullSink()
        self.include_loop = include_loop
        self.task = task
        self.dry = dry

    def _progress(self, message: str, fraction: float | None = None) -> None:
        log.debug("%s", message)  # the progress event reaches the console; the log file keeps this line
        self.sink.emit(TaskProgress(self.task, fraction, message))

    def apply(self, layout: Layout, expected: Disk) -> Applied:
        if not self.dry:
            recheck(Prober(self.runner, include_loop=self.include_loop, only=[expected.name]), expected)
        self._progress(f"erasing {expected.describe()} and writing a GPT", 0.05)
        with _APPLY_LOCK:
            self._blivet(layout, expected.name)
        self._fix_types(layout)
        applied = self.verify(layout)
        self._progress("partitions verified", 1.0)
        return applied

    # ------------------------------------------------------------------ blivet
    def _blivet(self, layout: Layout, name: str) -> None:
        """blivet in a fresh process (storage/blivet_worker.py), through the runner like any other command."""
        request = {"disk": name, "include_loop": self.include_loop, "partitions": [
            {"start": p.start, "end": p.end, "fmt_type": "efi" if p.role == "esp" else p.fstype, "label": p.label,
             "options": " ".join(p.mkfs_options), "mountpoint": p.mountpoint} for p in layout.partitions]}

        def on_line(line: str, stream: str) -> None:
            if stream != "stdout":
                return
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                return
            if "message" in event:
                self._progress(event["message"], event.get("fraction"))

        # -I: isolated (no current directory, PYTHONPATH or user site on the import path: a storage/ folder where
        # the installer was started must never run as root in its place), from a fixed working directory.
        self.runner.run([sys.executable, "-I", "-m", "storage.blivet_worker"], stdin=json.dumps(request),
                        on_line=on_line, cwd="/")

    # ------------------------------------------------------------------ post-fixes and checks
    def _fix_types(self, layout: Layout) -> None:
        # --no-tell-kernel: the kernel learns once, from partx -u below. Without it each of the six calls asks for a
        # whole-table re-read (refused on a loop device, ~0.3 s each here) for a change of types and names only.
        for spec in layout.partitions:
            self.runner.run(["sfdisk", "--quiet", "--part-type", "--no-tell-kernel", layout.disk, str(spec.number),
                             spec.type_guid])
            self.runner.run(["sfdisk", "--quiet", "--part-label", "--no-tell-kernel", layout.disk, str(spec.number),
                             spec.name])
        self.runner.run(["partx", "-u", layout.disk])
        self._progress("partition types and names set", 0.9)

    def verify(self, layout: Layout) -> Applied:
        if self.dry:
            self.runner.run(["sfdisk", "-J", layout.disk])
            return Applied({p.role: partition_path(layout.disk, p.number) for p in layout.partitions},
                           {p.role: f"<{p.role}-uuid>" for p in layout.partitions})
        table = json.loads(self.runner.run(["sfdisk", "-J", layout.disk]).stdout)["partitiontable"]
        problems = []
        if table.get("label") != "gpt":
            problems.append(f"partition table is {table.get('label')!r}, not gpt")
        found = {_number(p["node"]): p for p in table.get("partitions", [])}
        devices, uuids = {}, {}
        for spec in layout.partitions:
            part = found.get(spec.number)
            if part is None:
                problems.append(f"partition {spec.number} ({spec.role}) is missing")
                continue
            problems += _compare(spec, part, int(table.get("sectorsize", SECTOR)))
            device = partition_path(layout.disk, spec.number)
            info = blkid_export(self.runner.run(["blkid", "-p", "-o", "export", device], check=False).stdout)
            if info.get("TYPE") != spec.fstype:
                problems.append(f"{device}: filesystem {info.get('TYPE')!r}, expected {spec.fstype!r}")
            if info.get("LABEL") != spec.label:
                problems.append(f"{device}: label {info.get('LABEL')!r}, expected {spec.label!r}")
            devices[spec.role] = device
            uuids[spec.role] = info.get("UUID", "")
        if problems:
            raise InstallFailure("the disk does not hold the planned layout:\n  " + "\n  ".join(problems))
        return Applied(devices, uuids)


def _number(node: str) -> int:
    digits = ""
    for char in reversed(node):
        if not char.isdigit():
            break
        digits = char + digits
    return int(digits)


def _compare(spec: PartitionSpec, part: dict, sector: int = SECTOR) -> list[str]:
    """``sector``: the disk's logical sector size, the unit of sfdisk's starts and sizes (4096 on 4Kn disks)."""
    problems = []
    if part["start"] * sector != spec.start or part["size"] * sector != spec.size:
        problems.append(f"partition {spec.number}: {part['start']}+{part['size']} sectors of {sector} bytes, "
                        f"expected {spec.start // sector}+{spec.size // sector}")
    if part.get("type", "").upper() != spec.type_guid:
        problems.append(f"partition {spec.number}: type {part.get('type')}, expected {spec.type_guid}")
    if part.get("name", "") != spec.name:
        problems.append(f"partition {spec.number}: name {part.get('name')!r}, expected {spec.name!r}")
    return problems


# ---------------------------------------------------------------------- mounting the target tree


def helper_pids(program: str, argument: str, proc: Path = Path("/proc")) -> list[int]:
    """Processes running ``program`` with ``argument`` among their arguments (a daemonized FUSE helper)."""
    pids = []
    for entry in proc.glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and Path(argv[0].decode(errors="replace")).name == program and argument.encode() in argv:
            pids.append(int(entry.name))
    return pids


def wait_gone(pids: list[int], timeout: float = 10.0, proc: Path = Path("/proc")) -> list[int]:
    """Wait for processes to end; return those still running after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if (proc / str(pid)).exists() and not _zombie(proc / str(pid))]
        if alive:
            time.sleep(0.05)
    return alive


def _zombie(entry: Path) -> bool:
    try:
        return entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def mount_points(path: Path = mountinfo.MOUNTINFO) -> set[str]:
    return {mount.point for mount in mountinfo.read(path)}


class TargetMounts:
    """Mounts the target tree under a root directory and unmounts it in reverse order.

    ``umount`` is tried twice; ``umount --lazy`` is the last resort, and it is logged as such.
    """

    def __init__(self, runner: Runner, root: Path, *, fat_driver: str = "kernel",
                 files: TargetFiles | None = None) -> None:
        """``fat_driver``: "kernel", or "fusefat" where the kernel has no vfat (this kind of machine).
        ``files``: creates the mount points (in a dry run, shows them)."""
        self.runner = runner
        self.files = files or TargetFiles()
        root = Path(root).resolve()  # mountinfo holds resolved paths
        self.root = root
        self.fat_driver = fat_driver
        self.mounted: list[Path] = []
        self.devices: list[str] = []
        """The target's block devices mounted here: flushed after unmounting (never a global sync)."""
        self.helpers: dict[Path, list[int]] = {}
        """FUSE helpers serving a mount: waited for after unmounting (they write the FAT out as they exit)."""
        self.proc = Path("/proc")

    def mount(self, device: str, mountpoint: str, *options: str) -> Path:
        """Mount ``device`` at ``mountpoint`` inside the root (``/`` is the root itself)."""
        where = self.root / mountpoint.lstrip("/") if mountpoint != "/" else self.root
        self.files.mkdir(where)
        argv = ["mount", *(("-o", ",".join(options)) if options else ()), device, str(where)]
        self.runner.run(argv)
        self.mounted.append(where)
        if device.startswith("/dev/"):
            self.devices.append(device)
        return where

    def mount_layout(self, layout: Layout, applied: Applied, roles: tuple[str, ...] = ("root", "boot", "esp")) -> None:
        """Mount the target tree, outermost first. ``roles`` leaves out what this kernel cannot mount."""
        for role in roles:
            spec = layout.part(role)
            if role == "esp" and self.fat_driver == "fusefat":
                self.mount_fuse_fat(applied.devices[role], spec.mountpoint)
            else:
                self.mount(applied.devices[role], spec.mountpoint, *(("umask=0077",) if role == "esp" else ()))

    def bind(self, source: Path, where: Path) -> Path:
        """Bind ``source`` at ``where`` (inside the root, e.g. /dev into a deployment for a chroot); unmounted
        with the rest, innermost first, also after a failure or a stop."""
        where = Path(where).resolve()
        if not where.is_relative_to(self.root):
            raise ValueError(f"{where} is outside the target root {self.root}")
        self.runner.run(["mount", "--bind", str(source), str(where)])
        self.mounted.append(where)
        return where

    def mount_fuse_fat(self, device: str, mountpoint: str) -> Path:
        """FAT through FUSE. ``fsname`` puts the device in mountinfo, where grub-install looks for it."""
        where = self.root / mountpoint.lstrip("/")
        self.files.mkdir(where)
        self.runner.run(["fusefat", "-o", f"rw+,fsname={device}", device, str(where)])
        self.mounted.append(where)
        self.devices.append(device)
        self.helpers[where] = [] if self.files.dry else helper_pids("fusefat", str(where), self.proc)
        return where

    def _wait_for_helpers(self, where: Path) -> None:
        pids = self.helpers.pop(where, [])
        left = wait_gone(pids, proc=self.proc)
        if left:
            log.warning("the FUSE helper of %s (pid %s) did not end after unmounting; stopping it", where, left)
            for pid in left:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            wait_gone(left, 5.0, self.proc)

    def unmount_all(self) -> list[str]:
        """Unmount everything this object mounted, innermost first. Returns what needed the lazy fallback."""
        lazy = []
        while self.mounted:
            where = self.mounted.pop()
            if not self.files.dry and str(where) not in mount_points():  # ismount misses same-filesystem binds
                continue
            if self.runner.run(["umount", str(where)], check=False).ok:
                self._wait_for_helpers(where)
                continue
            self.runner.run(["sync", "--file-system", str(where)], check=False)
            if self.runner.run(["umount", str(where)], check=False).ok:
                continue
            log.warning("umount %s failed twice; detaching it lazily (last resort)", where)
            self.runner.run(["umount", "--lazy", str(where)], check=False)
            lazy.append(str(where))
        # fusefat writes through the partition's page cache: put it on the disk now, before the disk goes away
        # (a loop device detached with dirty pages would write them into the next image attached to it). Only the
        # target's devices: a global sync would also flush unrelated (even detached) devices.
        for where in list(self.helpers):
            self._wait_for_helpers(where)
        for device in dict.fromkeys(self.devices):
            self.runner.run(["blockdev", "--flushbufs", device], check=False)
        self.devices.clear()
        return lazy
