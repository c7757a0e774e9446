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
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .core.errors import UserError
from .core.files import BoundedReadError, read_bounded, read_text_bounded
from .discover import MAX_BYTES, PIN_KARG, Discovery, Found, boolean, clean, parse_spec
from .fleet import Identity, identity, interfaces, keep

log = logging.getLogger("phyllome.discover")

BOOT_ANSWERS = Path("/run/phyllome/answers.toml")
BOOT_STATUS = Path("/run/phyllome/boot-status")
UNATTENDED_KARG = "phyllome.unattended"


def kernel_flag(cmdline: str, name: str) -> bool:
    """A boolean kernel argument in the one grammar (:func:`discover.boolean`): clearly true, else false; a
    value that is neither clearly true nor clearly false is refused with a warning line, never taken as true."""
    value, warning = boolean(name, cmdline)
    if warning:
        log.warning("%s", warning)
    return value


@dataclass(frozen=True)
class Boot:
    """Where the initramfs leaves its outcome (injected by the tests)."""

    answers: Path = BOOT_ANSWERS
    status: Path = BOOT_STATUS


def read_cmdline(discovery: Discovery) -> str:
    return discovery.kernel_cmdline()


def from_initramfs(boot: Boot) -> Found | None:
    """The outcome of 90phyllome at boot, if it ran; raises its refusal."""
    try:
        line = clean(read_text_bounded(boot.status, 4096, errors="replace").strip())
    except OSError:
        return None
    word, _, detail = line.partition(" ")
    if word == "failed":
        raise UserError(f"at boot: {detail}")
    if word == "found":
        try:
            data = read_bounded(boot.answers, MAX_BYTES, follow_symlinks=False)
        except BoundedReadError as exc:
            raise UserError(f"at boot: {detail}: {boot.answers} {exc.reason}") from None
        return Found(f"{detail} (at boot)", data, str(boot.answers))
    return None


def check_machine(found: Found, who: Identity, macs: list[str]) -> None:
    """A served file that names another machine (``[report.machine]``) is refused: a fleet server that mixed up
    two machines must not install one machine's file on the other. An unreadable file is left to the parser."""
    try:
        wanted = tomllib.loads(found.data.decode()).get("report", {}).get("machine", {})
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return
    if not isinstance(wanted, dict):
        return
    have = who.as_dict()
    for name in ("uuid", "serial", "mac"):
        value = wanted.get(name)
        if not isinstance(value, str):
            continue
        mine = macs if name == "mac" else [have[name]]
        if keep(name, value) not in mine:
            raise UserError(f"{found.source}: refused: this answer file is for the machine with {name} "
                            f"{clean(value)}; this machine's {name} is {', '.join(mine) or 'unknown'}")


def find_answers(discovery: Discovery, cli_path: Path | None = None, *, boot: Boot | None = None) -> Found | None:
    """The answer file for ``phyllome-install install`` and the TUI alike, or None for an interactive install."""
    found = _find_answers(discovery, cli_path, boot=boot)
    if found is not None:
        check_machine(found, identity(discovery.sys_root, discovery.proc),
                      [keep("mac", mac) for _, mac, _ in interfaces(discovery.sys_root)])
    return found


def _find_answers(discovery: Discovery, cli_path: Path | None = None, *, boot: Boot | None = None) -> Found | None:
    if cli_path is not None:
        return discovery.find(cli_path)
    at_boot = from_initramfs(boot or Boot())
    if at_boot is not None:
        return at_boot
    spec = parse_spec(read_cmdline(discovery), discovery.label)
    if spec.kind == "error":
        raise UserError(spec.error)
    found = discovery.find(spec=spec)
    if found is not None and spec.kind != "default" and spec.sha256:  # the kernel argument was the source
        digest = hashlib.sha256(found.data).hexdigest()
        if digest != spec.sha256:
            raise UserError(f"{spec.source}: refused: its sha256 is {digest}, {PIN_KARG}= pins {spec.sha256}")
    return found
