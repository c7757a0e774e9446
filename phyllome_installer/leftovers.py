"""What an earlier install left behind when it was killed (``kill -9``, a power cut of the live session): mounts
under its system root, processes still using them (fuse helpers, an orphaned ``ostree pull``), loop devices on the
sandbox image. Cleaned up under the install lock, before anything is read from the target.

The rules: only what is provably ours is touched (mounts at or under the install's own system root, processes
using those mounts, loop devices backing our image); a target in use anywhere else (a partition of the image
mounted through another loop device, say) is never cleaned and never repartitioned: the install refuses and says
what to do.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from .core import mountinfo
from .core.errors import UserError
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


def image_in_use(image: Path, sysroot: Path, sys_root: Path = Path("/sys"),
                 table_path: Path = mountinfo.MOUNTINFO) -> list[str]:
    """Mounts of the image's partitions, through any loop device, outside ``sysroot`` (not ours to undo)."""
    sysroot = Path(sysroot).resolve()
    busy = []
    table = mounts(table_path)
    for loop in loop_devices_of(image, sys_root):
        devices = _devices(loop, sys_root)
        for number, where, _ in table:
            if number in devices and not _under(where, sysroot):
                busy.append(f"/dev/{devices[number]} is mounted on {where}")
    return busy


def clean_image(runner: Runner, image: Path, sysroot: Path, *, detach, sys_root: Path = Path("/sys"),
                table_path: Path = mountinfo.MOUNTINFO) -> list[str]:
    """Release loop devices left on the sandbox image; refuse when the image is in use elsewhere."""
    busy = image_in_use(image, sysroot, sys_root, table_path)
    if busy:
        raise UserError(f"the sandbox image {image} is in use: " + "; ".join(busy),
                        hint="unmount it (and detach its loop device with losetup -d) before installing onto it")
    done = []
    for loop in loop_devices_of(image, sys_root):
        device = f"/dev/{loop}"
        names = [f"/dev/{n}" for n in _devices(loop, sys_root).values()]
        # An orphaned mkfs, or the FUSE helper of the ESP, of an earlier run: stopped, and waited for (a loop
        # device still open when it is detached would only be released later, by the kernel).
        runner.run(["fuser", "--kill", *names], check=False)
        deadline = time.monotonic() + 10
        while runner.run(["fuser", *names], check=False).ok and time.monotonic() < deadline:
            time.sleep(0.1)
        detach(runner, device)
        done.append(f"released {device}, left attached to {image} by an earlier install")
        log.warning("%s", done[-1])
    return done
