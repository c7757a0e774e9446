"""First-boot state: the pending marker, and the saved hardware profile that later screens read."""

from __future__ import annotations

import json
import os
from pathlib import Path

from phyllome_installer.core.facts import FIRSTBOOT_ANSWERS, FIRSTBOOT_MARKER
from phyllome_installer.core.files import read_bounded, write_regular

MARKER = Path(FIRSTBOOT_MARKER)
PROFILE = Path("var/lib/phyllome/hardware.json")
ANSWERS = Path(FIRSTBOOT_ANSWERS)
"""[firstboot] of the answer file, saved by the installer (never a secret)."""
RESULT = Path("var/lib/phyllome/firstboot.json")
"""What the last first boot did: each step, its outcome, the VM; written by run --unattended and the screens."""


def pending(root: Path = Path("/")) -> bool:
    return (Path(root) / MARKER).exists()


def save_profile(data: dict, path: Path) -> Path:
    """Write the check results whole (a reader never sees half a file), and only as a regular file: a link, a
    device (``--save /dev/null``) or another special file is refused (OSError), never replaced. Not synced: every
    check writes it again, and :func:`load_profile` reads a torn or empty one as none."""
    return write_regular(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), durable=False)


def load_profile(path: Path) -> dict | None:
    try:
        data = json.loads(read_bounded(path, 8 << 20))
    except (OSError, ValueError, RecursionError):  # ValueError: not UTF-8, not JSON, an integer too long
        return None
    return data if isinstance(data, dict) else None


def not_a_host(root: Path = Path("/")) -> str | None:
    """Why ``root`` is not an installed Phyllome OS host that a first boot may run on, or None when it is: the
    installer always writes /etc/phyllome/firstboot.toml (and the marker while the first boot is pending), both
    regular files; the first boot writes its result below var/lib/phyllome, which must be writable."""
    root = Path(root)
    saved, marker = root / ANSWERS, root / MARKER
    for path in (saved, marker):
        if os.path.lexists(path) and not path.is_file() or path.is_symlink():
            return f"{path} is not a regular file"
    if not saved.exists() and not marker.exists():
        return (f"{root} is not an installed Phyllome OS host: neither {saved} nor {marker} exists (the installer "
                "writes them)")
    folder = root / RESULT.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK):
        return f"{folder} cannot be written (a read-only root?): the first boot could not record its result"
    return None
