"""The answer-file discovery every front end runs: what the live image's initramfs found at boot, then
:mod:`phyllome_installer.discover`'s sources, under the kernel-argument policy of the dracut module 90phyllome.

1. ``--answers PATH``: discover.py's;
2. the initramfs's outcome: the dracut module 90phyllome (dracut/90phyllome) writes one line to
   ``/run/phyllome/boot-status``: ``found SOURCE`` (the file is ``/run/phyllome/answers.toml``), ``failed MESSAGE``
   (that message is the error: fetching again here would bypass the checks the initramfs made, e.g. a wrong pin)
   or ``none MESSAGE`` (go on: a key may have been plugged in since);
3. discover.py's kernel argument and partition, with the initramfs's rules: ``phyllome.answers.sha256=`` pins the
   content, and plain ``http://`` without a pin is refused before any request unless
   ``phyllome.answers.insecure=1``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .core.errors import UserError
from .discover import KARG, Discovery, Found, kernel_argument

BOOT_ANSWERS = Path("/run/phyllome/answers.toml")
BOOT_STATUS = Path("/run/phyllome/boot-status")
PIN_KARG = "phyllome.answers.sha256"
INSECURE_KARG = "phyllome.answers.insecure"
UNATTENDED_KARG = "phyllome.unattended"


def kernel_flag(cmdline: str, name: str) -> bool:
    """A boolean kernel argument as dracut's getargbool reads it: ``name`` or ``name=1`` is true; ``name=0``,
    ``=no``, ``=off`` or no argument at all is false."""
    value = kernel_argument(cmdline, name)
    if value is None:
        return name in cmdline.split(" -- ")[0].split()
    return value not in ("0", "no", "off")


@dataclass(frozen=True)
class Boot:
    """Where the initramfs leaves its outcome (injected by the tests)."""

    answers: Path = BOOT_ANSWERS
    status: Path = BOOT_STATUS


def read_cmdline(discovery: Discovery) -> str:
    try:
        return discovery.cmdline.read_text(errors="replace")
    except OSError:
        return ""


def from_initramfs(boot: Boot) -> Found | None:
    """The outcome of 90phyllome at boot, if it ran; raises its refusal."""
    try:
        line = boot.status.read_text(errors="replace").strip()
    except OSError:
        return None
    word, _, detail = line.partition(" ")
    if word == "failed":
        raise UserError(f"at boot: {detail}")
    if word == "found":
        if not boot.answers.is_file():
            raise UserError(f"at boot: {detail}: {boot.answers} is gone")
        return Found(f"{detail} (at boot)", boot.answers)
    return None


def find_answers(discovery: Discovery, cli_path: Path | None = None, *, boot: Boot | None = None) -> Found | None:
    """The answer file for ``phyllome-install install`` and the TUI alike, or None for an interactive install."""
    if cli_path is not None:
        return discovery.find(cli_path)
    at_boot = from_initramfs(boot or Boot())
    if at_boot is not None:
        return at_boot
    cmdline = read_cmdline(discovery)
    value = kernel_argument(cmdline)
    pin = (kernel_argument(cmdline, PIN_KARG) or "").strip().lower()
    if value is not None and value.startswith("http://") and not pin and not kernel_flag(cmdline, INSECURE_KARG):
        raise UserError(f"{KARG}={value}: refused: plain http:// needs {PIN_KARG}= (or {INSECURE_KARG}=1)")
    found = discovery.find()
    if found is not None and value is not None and pin:  # the kernel argument was the source
        digest = hashlib.sha256(found.path.read_bytes()).hexdigest()
        if digest != pin:
            found.path.unlink(missing_ok=True)
            raise UserError(f"{KARG}={value}: refused: its sha256 is {digest}, {PIN_KARG}= pins {pin}")
    return found
