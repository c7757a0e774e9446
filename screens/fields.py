"""The form widgets both apps draw in the console theme's way (screens/console.py): the progress bar, the tick box
and the text field. Apart from the theme itself, so the first screen, which has none of them, does not load
Textual's Checkbox and ProgressBar before it is painted (Input comes with Textual's App anyway)."""

from __future__ import annotations

from rich.text import Text
from textual.content import Content
from textual.renderables.bar import Bar as BarRenderable
from textual.widgets import Checkbox, Input, ProgressBar

from .console import on_console


class ConsoleAwareBar(BarRenderable):
    """The progress bar: ``#`` done, ``.`` to do on the console; Textual's line glyphs elsewhere."""

    def __rich_console__(self, console, options):  # type: ignore[no-untyped-def]
        if not on_console():
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
