"""The console theme: what both apps draw on a Linux virtual console (TERM=linux, a 256/512-glyph font, 8 or 16
colours, or none).

Textual's default borders, scrollbars and progress bars use block elements (``▊ ▎ ▔ ▁ ━ ▼``) that no console font
has; the console draws them as filler blocks. With the theme on, both apps load ``console.tcss`` (ASCII and the basic
box-drawing set only; focus shown in reverse video, every input a visible field) and the scrollbars and progress bar
below draw with spaces in reverse video and ASCII. The theme is chosen once, by the environment, when an app starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from textual._context import active_app
from textual.dom import NoScreen
from textual.scrollbar import ScrollBar, ScrollBarRender

CSS = Path(__file__).with_name("console.tcss")

#: Terminals drawn with a console font: the Linux VT and its kin, and the few-colour terminals of serial lines.
CONSOLE_TERMS = ("linux", "vt100", "vt102", "vt220", "vt320", "dumb", "ansi", "cons25")


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """True on a console: TERM names one (linux, linux-16color, vt220...), or NO_COLOR is set. PHYLLOME_CONSOLE=1/0
    forces the theme on or off (a terminal emulator showing a console font, or tests)."""
    environ = os.environ if environ is None else environ
    forced = environ.get("PHYLLOME_CONSOLE", "")
    if forced in ("0", "1"):
        return forced == "1"
    term = environ.get("TERM", "")
    return term.split("-")[0] in CONSOLE_TERMS or bool(environ.get("NO_COLOR"))


def css_paths(main: str | Path, console: bool) -> list[str | Path]:
    return [main, CSS] if console else [main]


def on_console() -> bool:
    try:
        return bool(getattr(active_app.get(), "console_theme", False))
    except LookupError:
        return False


class _SpacesOnly(ScrollBarRender):
    """The thumb is spaces in reverse video, the track plain spaces: visible without colour, in any font."""

    VERTICAL_BARS = HORIZONTAL_BARS = [" "] * 8


class ConsoleAwareScrollBarRender(ScrollBarRender):
    """Textual's scrollbar, or the spaces-only one when the running app has the console theme."""

    @classmethod
    def render_bar(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        if on_console():
            return _SpacesOnly.render_bar(*args, **kwargs)
        return super().render_bar(*args, **kwargs)


#: Form rows: a label and the field it names (the installer's ``.field-row``, the first boot's ``.field``).
ROWS = frozenset({"field", "field-row"})
#: The class of the row holding the focus: the console theme marks its label.
FOCUSED_ROW = "-focused-row"


def mark_focused_row(screen) -> None:  # type: ignore[no-untyped-def]
    """Give the class FOCUSED_ROW to the form row holding the screen's focus, and to no other.

    Textual's ``:focus-within`` cannot do it: on a focus change it restyles only the focused widget's ancestors that
    have a ``:focus-within`` rule of their own, never the label beside the field, so the label stayed marked on the
    row just left and the row reached stayed unmarked (on a real console, Tab from the ISO to the OS list showed
    nothing). A class change restyles the row and everything in it."""
    focused = screen.focused
    row = next((node for node in focused.ancestors_with_self if ROWS & node.classes), None) if focused else None
    for node in screen.query(f".{FOCUSED_ROW}"):
        if node is not row:
            node.remove_class(FOCUSED_ROW)
    if row is not None:
        row.add_class(FOCUSED_ROW)


class FocusedRow:
    """Both apps: the form row holding the focus carries FOCUSED_ROW (mark_focused_row), on every focus change."""

    def on_descendant_focus(self, event) -> None:  # type: ignore[no-untyped-def]
        self._mark_row(event.widget)

    def on_descendant_blur(self, event) -> None:  # type: ignore[no-untyped-def]
        self._mark_row(event.widget)

    @staticmethod
    def _mark_row(widget) -> None:  # type: ignore[no-untyped-def]
        try:
            screen = widget.screen
        except NoScreen:  # blurred as its screen went
            return
        mark_focused_row(screen)


def install() -> None:
    """Make Textual's scrollbars console-aware (they are shared by every widget, so this is process-wide; the
    choice itself is per app, read when each bar is drawn)."""
    ScrollBar.renderer = ConsoleAwareScrollBarRender
