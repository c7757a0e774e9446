"""First-boot state: the pending marker, and the saved hardware profile that later screens read."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from phyllome_installer.core.facts import FIRSTBOOT_ANSWERS, FIRSTBOOT_MARKER

MARKER = Path(FIRSTBOOT_MARKER)
PROFILE = Path("var/lib/phyllome/hardware.json")
ANSWERS = Path(FIRSTBOOT_ANSWERS)
"""[firstboot] of the answer file, saved by the installer (never a secret)."""
RESULT = Path("var/lib/phyllome/firstboot.json")
"""What the last first boot did: each step, its outcome, the VM; written by run --unattended and the screens."""


def pending(root: Path = Path("/")) -> bool:
    return (Path(root) / MARKER).exists()


def save_profile(data: dict, path: Path) -> Path:
    """Write the check results atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hardware-")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def load_profile(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
