"""Sizes: the binary units and the way the installer and the first boot print a size, each defined once."""

from __future__ import annotations

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
#: The sector size of partition tables and blivet's device sizes (bytes).
SECTOR = 512


def human_size(size: int) -> str:
    """``size`` bytes in the largest unit below 1024 of it, one decimal: "8.0 GiB", "512 B"."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def gib_text(size: int) -> str:
    """``size`` bytes in GiB, whole when it is a whole number of them: "8 GiB", "1.5 GiB"; below one GiB in MiB
    ("256 MiB", where "0.2 GiB" said little)."""
    if size % GiB == 0:
        return f"{size // GiB} GiB"
    if size < GiB:
        return f"{size // MiB} MiB" if size % MiB == 0 else f"{size / MiB:.1f} MiB"
    return f"{size / GiB:.1f} GiB"
