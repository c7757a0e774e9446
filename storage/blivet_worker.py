"""The blivet step of apply.py, run as its own process: ``python -m storage.blivet_worker`` < request.json.

A fresh process per apply: libparted caches every device with its size for the life of a process (and blivet
keeps global state), so a disk replaced since an earlier apply in the same process would be partitioned with its
old size. The request (JSON on stdin) names the disk and the partitions; progress goes to stdout as JSON lines,
errors to stderr with exit code 1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from phyllome_installer.core.sizes import SECTOR


def emit(fraction: float, message: str) -> None:
    print(json.dumps({"fraction": round(fraction, 3), "message": message}), flush=True)


def confine_to(name: str) -> None:
    """Show blivet only the target and its partitions.

    ``exclusive_disks`` stops blivet from changing other disks, but its populator still walks every block device
    udev lists, and a stale partition whose loop device was detached (``loop5p1`` under an empty ``loop5``) made
    every apply fail with "Device 'loop5p1' not in tree". blivet reads the device list through
    ``blivet.udev.get_devices`` only; in this worker process that list is cut down to the target.
    """
    from blivet import udev

    everything = udev.get_devices

    def target_only(subsystem: str = "block") -> list:
        return [dev for dev in everything(subsystem) if dev.get("SYS_NAME") == name
                or os.path.basename(os.path.dirname(dev.get("SYS_PATH", ""))) == name]

    udev.get_devices = target_only


def settle_only_with_udevd(control: Path = Path("/run/udev/control")) -> bool:
    """blivet runs ``udevadm settle`` about 25 times an apply. Without a udev daemon (no control socket: a bare
    machine or container; the live system has one) there is no event queue to wait for, and each call is only a
    process started for nothing: then blivet's settle does nothing. Returns whether it was turned off."""
    if control.exists():
        return False
    from blivet import udev

    udev.settle = lambda quiet=False: None
    return True


def logical_sector_size(name: str, sys_root: Path = Path("/sys")) -> int:
    """The disk's logical sector size: blivet and parted count partitions in it (4096 on 4Kn disks)."""
    try:
        return int((sys_root / "block" / name / "queue" / "logical_block_size").read_text())
    except (OSError, ValueError):
        return SECTOR


def apply(request: dict) -> None:
    import blivet
    from blivet.callbacks import create_new_callbacks_register
    from blivet.formats import get_format
    from blivet.populator import helpers

    name = request["disk"]
    confine_to(name)
    settle_only_with_udevd()
    if request.get("include_loop") and helpers.LoopDevicePopulator in helpers._device_helpers:
        helpers._device_helpers.remove(helpers.LoopDevicePopulator)  # DESIGN.md 4: loopN as a disk
    storage = blivet.Blivet()
    storage.exclusive_disks = [name]  # blivet never sees another disk
    storage.reset()
    disk = storage.devicetree.get_device_by_name(name)
    if disk is None or not disk.is_disk:
        raise SystemExit(f"blivet does not see {name} as a disk")
    print(json.dumps({"debug": f"blivet sees {name}: {disk.size}"}), flush=True)
    if disk.children or disk.format.type is not None:
        storage.recursive_remove(disk)
    storage.format_device(disk, get_format("disklabel", device=disk.path, label_type="gpt"))
    sector = logical_sector_size(name)
    for spec in request["partitions"]:
        part = storage.new_partition(start=spec["start"] // sector, end=spec["end"] // sector - 1, parents=[disk],
                                     fmt_type=spec["fmt_type"], mountpoint=spec["mountpoint"],
                                     fmt_args={"label": spec["label"], "create_options": spec["options"] or None})
        storage.create_device(part)
    blivet.partitioning.do_partitioning(storage)
    actions = storage.devicetree.actions.find()
    done = [0]

    def step(default: str):
        def callback(data: object) -> None:
            done[0] += 1
            emit(0.1 + 0.7 * min(done[0] / (2 * max(len(actions), 1)), 1.0), getattr(data, "msg", "") or default)
        return callback

    storage.do_it(callbacks=create_new_callbacks_register(
        create_format_pre=step("creating a filesystem"), create_format_post=step("filesystem created"),
        report_progress=step("working")))


def main() -> int:
    try:
        apply(json.load(sys.stdin))
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 1
    except Exception as exc:  # reported by the parent as the partition task's failure
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
