"""The fixed sizes of the layout (storage/layout.py) and the smallest disk they fit, which the probe
(storage/probe.py) also needs to flag a disk as too small: one module both import."""

from __future__ import annotations

from phyllome_installer.core.sizes import GiB, MiB

ALIGN = MiB
ESP_SIZE = 600 * MiB
BOOT_SIZE = 1 * GiB
MIN_ROOT = 8 * GiB


def minimum_disk_size() -> int:
    return ALIGN + ESP_SIZE + BOOT_SIZE + MIN_ROOT + ALIGN


#: The smallest disk the installer offers (the probe flags smaller ones as too small).
MIN_DISK_BYTES = minimum_disk_size()
