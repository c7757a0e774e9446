"""Console keymap names as people know them: ``de-nodeadkeys`` is shown as "German (no dead keys,
de-nodeadkeys)", ``fr`` as "French (AZERTY, fr)". The value chosen stays the keymap's name (what ``loadkeys`` and
vconsole.conf take). The common keymaps have names written here; the rest are named from XKB's rules list
(``base.lst``: Fedora's console keymaps are generated from XKB, ``LAYOUT`` or ``LAYOUT-VARIANT``), read bounded.
No Textual here: the welcome and encryption screens use it.
"""

from __future__ import annotations

import re
from pathlib import Path

from phyllome_installer.core.files import BoundedReadError, read_bounded

XKB_LIST = Path("/usr/share/X11/xkb/rules/base.lst")
MAX_LIST = 1 << 20
"""base.lst is about 45 KiB; anything far larger is not a rules list."""

KNOWN = {
    "us": "English (US)", "uk": "English (UK)", "de": "German", "de-nodeadkeys": "German (no dead keys)",
    "fr": "French (AZERTY)", "fr-latin9": "French (AZERTY, Latin-9)", "be-latin1": "Belgian (AZERTY)",
    "ch-fr": "Swiss French", "ch-de": "Swiss German", "es": "Spanish", "it": "Italian", "pt-latin1": "Portuguese",
    "br-abnt2": "Portuguese (Brazil, ABNT2)", "nl": "Dutch", "se-latin1": "Swedish", "no-latin1": "Norwegian",
    "dk-latin1": "Danish", "fi": "Finnish", "pl2": "Polish", "cz-qwertz": "Czech (QWERTZ)", "hu": "Hungarian",
    "ru": "Russian", "jp106": "Japanese (106 keys)", "us-dvorak": "English (US, Dvorak)",
    "us-colemak": "English (US, Colemak)",
}
_UNPRINTABLE = r"[^\x20-\x7e\u00a0-\ufffc]"
"""Compiled at its first use (re's cache), by xkb_names: its charset takes about 5 ms to compile, as long as the
rest of the first screen's imports of this project together."""


def xkb_names(path: Path = XKB_LIST) -> dict[str, str]:
    """``layout`` and ``layout-variant`` -> XKB's description; {} when the list is missing or not a list."""
    try:
        text = read_bounded(path, MAX_LIST).decode("utf-8", "replace")
    except (BoundedReadError, OSError):
        return {}
    names: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("!"):
            section = line[1:].strip()
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or not re.fullmatch(r"[A-Za-z0-9_()-]{1,64}", parts[0]):
            continue
        description = re.sub(_UNPRINTABLE, "", parts[1]).strip()[:120]
        if section == "layout":
            names[parts[0]] = description
        elif section == "variant" and ":" in description:
            layout, said = description.split(":", 1)
            if re.fullmatch(r"[A-Za-z0-9_]{1,32}", layout):
                names[f"{layout}-{parts[0]}"] = said.strip()
    return names


def shown(keymap: str, xkb: dict[str, str] | None = None) -> str:
    """The keymap as a person knows it, its name kept at the end: "German (no dead keys, de-nodeadkeys)"."""
    described = KNOWN.get(keymap) or (xkb or {}).get(keymap)
    if not described:
        return keymap
    if described.endswith(")"):
        return f"{described[:-1]}, {keymap})"
    return f"{described} ({keymap})"


def options(keymaps: list[str], xkb: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(shown, keymap) for a ChoiceField: the common keymaps first as given, then the rest by what is shown (named
    from XKB's list, read only when there is a rest)."""
    if xkb is None:
        xkb = xkb_names() if any(k not in KNOWN for k in keymaps) else {}
    common = [(shown(k, xkb), k) for k in keymaps if k in KNOWN]
    rest = sorted(((shown(k, xkb), k) for k in keymaps if k not in KNOWN), key=lambda o: o[0].casefold())
    return common + rest
