"""What an earlier install left behind when it was killed (``kill -9``, a power cut of the live session): mounts
under its system root, processes still using them (fuse helpers, an orphaned ``ostree pull``), loop devices on the
sandbox image. Cleaned up under the install lock, before anything is read from the target.

The rules: only what is provably ours is touched (mounts at or under the install's own system root, processes
using those mounts, loop devices backing our image); a target in use anywhere else (a partition of the image
mounted through another loop device, say) is never cleaned and never repartitioned: the install refuses and says
what to do.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from .core import mountinfo
from .core.errors import UserError
from .core.files import BoundedReadError, read_bounded
from .core.runner import Runner

log = logging.getLogger("phyllome.leftovers")


def mounts(path: Path = mountinfo.MOUNTINFO) -> list[tuple[str, str, str]]:
    """``(major:minor, mount point, source)`` of every mount, in mount order."""
    return [(m.device, m.point, m.source) for m in mountinfo.read(path)]


def _under(path: str, root: Path) -> bool:
    return path == str(root) or path.startswith(str(root).rstrip("/") + "/")


def clean_mounts(runner: Runner, sysroot: Path, table_path: Path = mountinfo.MOUNTINFO) -> list[str]:
    """Unmount everything at or under ``sysroot``, innermost first; stop the processes using those mounts."""
    sysroot = Path(sysroot).resolve()
    table = mounts(table_path)
    found = [(device, where) for device, where, _ in table if _under(where, sysroot)]
    # A filesystem also mounted outside the sysroot is the running system's (the /dev, /proc and /sys bound into
    # the deployment for grub-install): its users are every process here, so they are never stopped.
    shared = {device for device, where, _ in table if not _under(where, sysroot)}
    done = []
    for device, where in reversed(found):
        if device in shared:
            log.debug("%s is a bind of the running system's %s filesystem: unmounted, nobody stopped", where, device)
        else:
            # -M: only if it is a mount point (never "the filesystem containing it", which could be /).
            runner.run(["fuser", "--kill", "--ismountpoint", "--mount", where], check=False)
        if not runner.run(["umount", where], check=False).ok:
            runner.run(["umount", "--lazy", where], check=False)
        done.append(f"unmounted {where}, left mounted by an earlier install")
    for line in done:
        log.warning("%s", line)
    return done


def loop_devices_of(image: Path, sys_root: Path = Path("/sys")) -> list[str]:
    """Loop devices (``loop3``) whose backing file is ``image`` (same inode, whatever path they were given)."""
    try:
        target = os.stat(image)
    except OSError:
        return []
    out = []
    for entry in sorted((sys_root / "block").glob("loop*")):
        try:
            backing = (entry / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue
        backing = backing.removesuffix(" (deleted)")
        try:
            info = os.stat(backing)
        except OSError:
            continue
        if (info.st_dev, info.st_ino) == (target.st_dev, target.st_ino):
            out.append(entry.name)
    return out


def _devices(name: str, sys_root: Path) -> dict[str, str]:
    """major:minor -> name of a loop device and its partitions."""
    block = sys_root / "block" / name
    out = {}
    for entry in [block, *sorted(block.glob(f"{name}p*"))]:
        try:
            out[(entry / "dev").read_text().strip()] = entry.name
        except OSError:
            continue
    return out


RECORDS = Path("/run/phyllome/loops")
"""One file per loop device an install attached (its image's device and inode, the install's pid): what a later
run may release. A loop device on the image that is not recorded there is someone else's, and never touched."""


def record_loop(device: str, image: Path, records: Path = RECORDS) -> None:
    info = os.stat(image)
    records.mkdir(parents=True, exist_ok=True, mode=0o700)
    (records / Path(device).name).write_text(json.dumps({"image": [info.st_dev, info.st_ino], "pid": os.getpid()}))


def forget_loop(device: str, records: Path = RECORDS) -> None:
    (records / Path(device).name).unlink(missing_ok=True)


def _recorded_by_a_finished_install(loop: str, image: Path, records: Path) -> bool:
    """The loop device was attached to this image by an install of ours whose process is gone."""
    try:
        record = json.loads(read_bounded(records / loop, 4096))
        info = os.stat(image)
    except (OSError, BoundedReadError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("image") != [info.st_dev, info.st_ino]:
        return False
    pid = record.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False  # its install is still running


def _swaps(proc: Path) -> list[str]:
    try:
        lines = read_bounded(proc / "swaps", 1 << 20).decode(errors="replace").splitlines()[1:]
    except (OSError, BoundedReadError):
        return []
    return [line.split()[0].replace("\\040", " ") for line in lines if line.split()]


def _locks_on(image: Path, proc: Path) -> list[str]:
    """Other processes' file locks on the image (QEMU's OFD locks, flock, POSIX locks), from /proc/locks."""
    try:
        info = os.stat(image)
        lines = read_bounded(proc / "locks", 4 << 20).decode(errors="replace").splitlines()
    except (OSError, BoundedReadError):
        return []
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    out = []
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[5] != wanted or fields[4] == str(os.getpid()):
            continue
        out.append(f"{fields[1]} lock" + (f" of process {fields[4]}" if fields[4] != "-1" else ""))
    return out


def _same_file(path: str, info: os.stat_result) -> bool:
    try:
        other = os.stat(path)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (info.st_dev, info.st_ino)


def image_in_use(image: Path, sysroot: Path, sys_root: Path = Path("/sys"),
                 table_path: Path = mountinfo.MOUNTINFO, proc: Path = Path("/proc")) -> list[str]:
    """What makes the image someone else's right now: mounts of its partitions outside ``sysroot`` (through any
    loop device), swap on it or on its partitions, device-mapper devices stacked on it, other programs' file
    locks on it (QEMU locks the images of its running VMs)."""
    sysroot = Path(sysroot).resolve()
    busy = []
    table = mounts(table_path)
    swaps = _swaps(proc)
    try:
        info = os.stat(image)
    except OSError:
        return busy
    busy += [f"it is active as swap ({s})" for s in swaps if _same_file(s, info)]
    for loop in loop_devices_of(image, sys_root):
        devices = _devices(loop, sys_root)
        for number, where, _ in table:
            if number in devices and not _under(where, sysroot):
                busy.append(f"/dev/{devices[number]} is mounted on {where}")
        for name in devices.values():
            if f"/dev/{name}" in swaps:
                busy.append(f"/dev/{name} is active as swap")
            holders = sys_root / "block" / loop / ("" if name == loop else name) / "holders"
            for holder in sorted(os.listdir(holders)) if holders.is_dir() else []:
                busy.append(f"/dev/{name} is held by /dev/{holder}")
    busy += [f"another program holds a {what} on it (a running VM?)" for what in _locks_on(image, proc)]
    return busy

def clean_image(runner: Runner, image: Path, sysroot: Path, *, detach, sys_root: Path = Path("/sys"),
                table_path: Path = mountinfo.MOUNTINFO, records: Path = RECORDS) -> list[str]:
    """Release the loop devices an earlier, finished install of ours recorded on the image; refuse when the image
    is in use by anything else (nothing is killed or detached then)."""
    busy = image_in_use(image, sysroot, sys_root, table_path)
    loops = loop_devices_of(image, sys_root)
    busy += [f"it is attached to /dev/{loop} by another program (not by an earlier install)"
             for loop in loops if not _recorded_by_a_finished_install(loop, image, records)]
    if busy:
        raise UserError(f"the disk image {image} is in use: " + "; ".join(busy) + "; nothing was done",
                        hint="stop what uses it (unmount it, swapoff, stop the VM) and detach its loop device "
                             "(losetup -d) before installing onto it")
    done = []
    for loop in loops:
        device = f"/dev/{loop}"
        names = [f"/dev/{n}" for n in _devices(loop, sys_root).values()]
        # An orphaned mkfs, or the FUSE helper of the ESP, of an earlier run: stopped, and waited for (a loop
        # device still open when it is detached would only be released later, by the kernel).
        runner.run(["fuser", "--kill", *names], check=False)
        deadline = time.monotonic() + 10
        while runner.run(["fuser", *names], check=False).ok and time.monotonic() < deadline:
            time.sleep(0.1)
        detach(runner, device)
        forget_loop(device, records)
        done.append(f"released {device}, left attached to {image} by an earlier install")
        log.warning("%s", done[-1])
    return done
