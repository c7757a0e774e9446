"""``/proc/self/mountinfo``, read in one place: the installer's own mounts, what a killed install left, which
block devices are in use, and where fscrypt finds a filesystem's metadata all come from here.

Each line: ``ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS``; paths
have space, tab, newline and backslash written as octal escapes (``\\040``...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    device: str
    """major:minor of the filesystem (``0:NN`` for those without a block device)."""
    root: str
    """The directory of the filesystem mounted here (``/`` unless it is a bind of a subdirectory)."""
    point: str
    fstype: str
    source: str


def unescape(field: str) -> str:
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse(text: str) -> list[Mount]:
    """Every mount, in mount order; malformed lines are skipped."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or "-" not in fields[6:]:
            continue
        dash = fields.index("-", 6)
        if len(fields) < dash + 3:
            continue
        mounts.append(Mount(fields[2], unescape(fields[3]), unescape(fields[4]), fields[dash + 1],
                            unescape(fields[dash + 2])))
    return mounts


def read(path: Path = MOUNTINFO) -> list[Mount]:
    """The mounts of `path` (a mountinfo file); none when it cannot be read."""
    try:
        return parse(Path(path).read_text())
    except OSError:
        return []
