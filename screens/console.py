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

from rich.text import Text
from textual._context import active_app
from textual.content import Content
from textual.dom import NoScreen
from textual.renderables.bar import Bar as BarRenderable
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.widgets import Checkbox, Input, ProgressBar

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


def _on_console() -> bool:
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
        if _on_console():
            return _SpacesOnly.render_bar(*args, **kwargs)
        return super().render_bar(*args, **kwargs)


class ConsoleAwareBar(BarRenderable):
    """The progress bar: ``#`` done, ``.`` to do on the console; Textual's line glyphs elsewhere."""

    def __rich_console__(self, console, options):  # type: ignore[no-untyped-def]
        if not _on_console():
            yield from super().__rich_console__(console, options)
            return
        width = self.width or options.max_width
        start, end = (max(0, min(width, round(x))) for x in self.highlight_range)
        if end < start:
            start, end = end, start
        yield Text.assemble(("." * start, self.background_style), ("#" * (end - start), self.highlight_style),
                            ("." * (width - end), self.background_style), end="")


class StepsBar(ProgressBar):
    BAR_RENDERABLE = ConsoleAwareBar


class Tick(Checkbox):
    """A checkbox whose state is a mark, not a colour: ``[x]`` on, ``[ ]`` off (Textual draws its X in both)."""

    BUTTON_LEFT = BUTTON_INNER = BUTTON_RIGHT = ""

    def __init__(self, text: str, value: bool = False, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.text = text
        super().__init__(self._mark(value), value, **kwargs)

    def _mark(self, value: bool) -> Content:
        return Content(("[x] " if value else "[ ] ") + self.text)  # plain text: "[x]" is not markup

    def set_text(self, text: str) -> None:
        self.text = text
        self.label = self._mark(self.value)

    def watch_value(self) -> None:
        self.label = self._mark(self.value)
        super().watch_value()


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


class Field(Input):
    """A text field. On the console: secrets as ``*`` (``•`` is in no console font), and the text of a field not
    being typed in drawn in reverse video like the rest of its bar, so every field shows as one."""

    @property
    def _value(self) -> Text:
        if not getattr(self.app, "console_theme", False):
            return super()._value
        text = Text("*" * len(self.value), no_wrap=True, overflow="ignore", end="") if self.password \
            else super()._value
        if not self.has_focus:
            text.stylize("reverse")
        return text
