"""The systemd units (package data in ``phyllome_installer/data/systemd/``) and how a system tree gets them.

The payload ships them in ``/usr/lib/systemd/system`` and enables them there (``<target>.wants/`` links in
/usr), so an upgrade of the host brings their fixes and a rollback takes them back: units copied into the
target's /etc at install time would shadow /usr's forever. The payload builder runs
``python3 -m phyllome_installer.units install --root TREE`` (``--live`` for the live image's installer unit).
"""

from __future__ import annotations

import argparse
import configparser
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

INSTALLED_UNITS = ("phyllome-unlock.service", "phyllome-firstboot.service")
"""On the installed host: the VM store at every boot, and the first boot."""
LIVE_UNITS = ("phyllome-installer.service",)
"""On the live image: the installer on tty1."""
UNIT_DIR = Path("usr/lib/systemd/system")


def unit_text(name: str) -> str:
    return resources.files("phyllome_installer").joinpath("data", "systemd", name).read_text()


def wanted_by(text: str) -> list[str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser.get("Install", "WantedBy", fallback="").split()


def install(root: Path, names: Sequence[str] = INSTALLED_UNITS) -> list[Path]:
    """Copy the units into ``root``/usr/lib/systemd/system and enable them there; returns what was written."""
    unit_dir = Path(root) / UNIT_DIR
    unit_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        text = unit_text(name)
        path = unit_dir / name
        path.write_text(text)
        path.chmod(0o644)
        written.append(path)
        for target in wanted_by(text):
            wants = unit_dir / f"{target}.wants"
            wants.mkdir(exist_ok=True)
            link = wants / name
            if link.is_symlink() or link.exists():
                link.unlink()
            os.symlink(f"../{name}", link)
            written.append(link)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m phyllome_installer.units",
                                     description="Install and enable Phyllome's systemd units in a system tree.")
    parser.add_argument("action", choices=["install", "list"])
    parser.add_argument("--root", type=Path, default=Path("/"), help="the system tree (default /)")
    parser.add_argument("--live", action="store_true", help="the live image's units (the installer on tty1)")
    args = parser.parse_args(argv)
    names = LIVE_UNITS if args.live else INSTALLED_UNITS
    if args.action == "list":
        print("\n".join(names))
        return 0
    for path in install(args.root, names):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
