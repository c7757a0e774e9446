"""A disk image file, read without attaching it: what the Disk screen shows for the sandbox image (an installed
sandbox is not "empty", so the strong confirmation is asked)."""

from __future__ import annotations

import json
import os
import re

from phyllome_installer.core.runner import Runner

from .probe import ESP_VENDORS, WINDOWS_RESERVED, Partition, blkid_export

# ------------------------------------------------------------------ a disk image file, read without attaching it

def read_image(runner: Runner, image: str) -> dict[str, object]:
    """What a disk image file holds, read-only and without attaching it (``sfdisk --json`` reads the partition
    table, ``blkid -p -O`` and ``debugfs image?offset=`` each filesystem at its offset): the fields ``table``,
    ``fstype``, ``partitions`` and ``os`` of a :class:`Disk`. An image that does not exist yet holds nothing."""
    if not os.path.isfile(image):
        return {}
    result = runner.run(["sfdisk", "--json", image], check=False)
    try:
        table = json.loads(result.stdout)["partitiontable"] if result.ok and result.stdout.strip() else {}
    except (ValueError, KeyError, TypeError):
        table = {}
    if not table:
        whole = blkid_export(runner.run(["blkid", "-p", "-o", "export", image], check=False).stdout)
        return {"fstype": whole.get("TYPE", "")}
    sector = int(table.get("sectorsize", 512))
    partitions, found = [], []
    for number, entry in enumerate(table.get("partitions", []), 1):
        start, size = int(entry.get("start", 0)) * sector, int(entry.get("size", 0)) * sector
        info = blkid_export(runner.run(["blkid", "-p", "-o", "export", "-O", str(start), "-S", str(size), image],
                                        check=False).stdout)
        part = Partition(number=number, path=str(entry.get("node", f"{image}{number}")), size=size,
                         fstype=info.get("TYPE", ""), label=info.get("LABEL", ""), uuid=info.get("UUID", ""),
                         part_label=str(entry.get("name", "")), part_type=str(entry.get("type", "")).upper())
        partitions.append(part)
        for guess in _image_guesses(runner, image, start, part):
            if guess not in found:
                found.append(guess)
    return {"table": str(table.get("label", "")), "partitions": partitions, "os": found}


def _image_guesses(runner: Runner, image: str, offset: int, part: Partition) -> list[str]:
    if part.fstype in ("ext2", "ext3", "ext4"):
        device = f"{image}?offset={offset}"  # e2fsprogs' io option: the filesystem inside the file, read-only
        for release in ("/etc/os-release", "/usr/lib/os-release"):
            text = runner.run(["debugfs", "-R", f"cat {release}", device], check=False).stdout
            match = re.search(r'^(?:PRETTY_NAME|NAME)="?([^"\n]+)"?', text, re.MULTILINE)
            if match:
                return [match.group(1)]
        listing = runner.run(["debugfs", "-R", "ls -p /ostree/deploy", device], check=False).stdout
        names = [line.split("/")[5] for line in listing.splitlines() if line.count("/") >= 6]
        names = [name for name in names if name not in (".", "..", "")]
        if names:
            return [ESP_VENDORS.get(name, name) + " (ostree)" for name in names]
    if part.fstype in ("ntfs", "BitLocker") or part.part_type == WINDOWS_RESERVED:
        return ["Windows"]
    if part.fstype in ("ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs"):
        return ["Linux"]
    return []
