"""The systemd units (package data in ``phyllome_installer/data/systemd/``) and the one way a system tree gets them.

They go into ``/usr/lib/systemd/system`` and are enabled the way systemd enables units in a tree that is not
running, ``systemctl --root=TREE enable`` (their ``[Install]`` sections, as links under TREE/etc). The payload's
build (``payload/build.py``, which then moves /etc to /usr/etc, ostree's home for the defaults of /etc), the live
medium's build (``live/build.py``) and the unit tests all call :func:`install`; nothing else writes the links.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from .core.runner import Runner, SubprocessRunner

INSTALLED_UNITS = ("phyllome-unlock.service", "phyllome-firstboot.service")
"""On the installed host: the VM store at every boot, and the first boot."""
LIVE_UNITS = ("phyllome-installer.service",)
"""On the live image: the installer on tty1."""
UNIT_DIR = Path("usr/lib/systemd/system")


def unit_text(name: str) -> str:
    return resources.files("phyllome_installer").joinpath("data", "systemd", name).read_text()


def install(root: Path, names: Sequence[str] = INSTALLED_UNITS, runner: Runner | None = None) -> list[Path]:
    """Write the named units into ``root``/usr/lib/systemd/system and enable them there with
    ``systemctl --root`` (``runner``: the project's, a failure raises with systemctl's words); returns the unit
    files written."""
    unit_dir = Path(root) / UNIT_DIR
    unit_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        path = unit_dir / name
        path.write_text(unit_text(name))
        path.chmod(0o644)
        written.append(path)
    (runner or SubprocessRunner()).run(["systemctl", f"--root={root}", "enable", *names])
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
