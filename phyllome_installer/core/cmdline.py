"""The kernel command line, split as the kernel splits it (``next_arg()`` in the kernel's ``kernel/params.c``).

Words are separated by whitespace outside double quotes; a double quote toggles quoting and stays in the word;
``name="a value with spaces"`` is one word whose value is ``a value with spaces`` (the kernel drops the quotes
around a value, and around a whole word that starts with one). Backslashes and single quotes mean nothing, unlike
in a shell, so :mod:`shlex` is not the right tool. ``--`` ends the kernel's arguments: what follows is for init.
"""

from __future__ import annotations

from collections.abc import Iterator

_SPACE = " \t\n\r\v\f"


def words(cmdline: str) -> list[str]:
    """The raw words (quotes kept) of a command line, up to ``--``."""
    out: list[str] = []
    for word in _split(cmdline):
        if word == "--":
            break
        out.append(word)
    return out


def _split(cmdline: str) -> Iterator[str]:
    i, n = 0, len(cmdline)
    while i < n:
        while i < n and cmdline[i] in _SPACE:
            i += 1
        if i >= n:
            return
        start, quoted = i, False
        while i < n and (quoted or cmdline[i] not in _SPACE):
            if cmdline[i] == '"':
                quoted = not quoted
            i += 1
        yield cmdline[start:i]


def parse_word(word: str) -> tuple[str, str | None]:
    """``(name, value)`` of one word as the kernel sees it; ``value`` is None for a bare flag such as ``quiet``."""
    if word.startswith('"'):
        word = word[1:]
        if word.endswith('"'):
            word = word[:-1]
    name, sep, value = word.partition("=")
    if not sep:
        return name, None
    if value.startswith('"'):
        value = value[1:]
        if value.endswith('"'):
            value = value[:-1]
    return name, value


def argument(cmdline: str, name: str) -> str | None:
    """The value of ``name=`` (the last one wins, as in the kernel); None when absent or a bare flag."""
    value = None
    for word in words(cmdline):
        key, val = parse_word(word)
        if key == name and val is not None:
            value = val
    return value


def flag(cmdline: str, name: str) -> bool:
    """Whether ``name`` or ``name=1``/``=yes``/``=true``/``=on`` is given (the last one wins)."""
    state = False
    for word in words(cmdline):
        key, val = parse_word(word)
        if key == name:
            state = val is None or val.lower() in ("1", "yes", "true", "on", "y")
    return state


def is_one_word(text: str) -> bool:
    """Whether ``text`` is exactly one kernel argument: balanced quotes, whitespace only inside them."""
    return text != "--" and text.count('"') % 2 == 0 and words(text) == [text]
