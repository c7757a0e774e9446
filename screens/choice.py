"""A value picked from a list: one line in a box on the form, the list on a screen of its own.

On the form it is a single widget (Textual's Select mounts five, its dropdown list included, before the first paint:
about 17 ms of the installer's first screen, issue 26 P1). Enter, Space, Down, Up or a click opens the list, which
fills the dialog instead of a dropdown squeezed under the field on an 80x25 console: the arrows, Home/End and
PageUp/PageDown move, typing jumps to the first option whose name holds what was typed ("german"), Enter picks, Esc
keeps the value.
"""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

SEARCH_RESET = 0.7
"""Seconds after the last typed character before typing starts a new search (as Textual's Select)."""


class ChoiceField(Static, can_focus=True):
    """Shows the chosen option's name; ``value`` is the option's value. Posts :class:`ChoiceField.Changed` when the
    value changes, whether picked in the list or set by the program."""

    BINDINGS = [Binding("enter,space,down,up", "open", "Choose", show=False)]
    DEFAULT_CSS = """
    ChoiceField {
        width: 1fr;
        height: 3;
        padding: 0 1;
        border: tall $border-blurred;
        background: $surface;
        text-wrap: nowrap;
        text-overflow: clip;
    }
    ChoiceField:focus {
        border: tall $border;
        background-tint: $foreground 5%;
    }
    """

    class Changed(Message):
        def __init__(self, choice: ChoiceField, value: str) -> None:
            super().__init__()
            self.choice = choice
            self.value = value

        @property
        def control(self) -> ChoiceField:
            return self.choice

    def __init__(self, options: list[tuple[str, str]], value: str, *, title: str, id: str | None = None) -> None:
        """``options``: (shown, value) pairs; ``value`` must be one of them; ``title``: the list screen's title."""
        self.options = list(options)
        self.names = {option_value: shown for shown, option_value in self.options}
        super().__init__(self.shown(value), id=id)
        self._value = value
        self.title = title

    def shown(self, value: str) -> str:
        """The name ``value`` is shown by; ValueError when it is not one of the options."""
        if value not in self.names:
            raise ValueError(f"{value!r} is not one of the options")
        return self.names[value]

    @property
    def value(self) -> str:
        return self._value

    @value.setter
    def value(self, value: str) -> None:
        shown = self.shown(value)
        if value != self._value:
            self._value = value
            self.update(shown)
            self.post_message(self.Changed(self, value))

    def on_click(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        def picked(value: str | None) -> None:
            if value is not None:
                self.value = value

        self.app.push_screen(ChoiceList(self.title, self.options, self.value), picked)


class ChoiceList(ModalScreen[str | None]):
    """The options of a :class:`ChoiceField`; dismissed with the picked value, or None (Esc)."""

    BINDINGS = [Binding("escape", "keep", "Keep")]

    def __init__(self, title: str, options: list[tuple[str, str]], value: str) -> None:
        super().__init__()
        self.title_text = title
        self.options = options
        self.value = value
        self.search = ""
        self.typed_at = 0.0

    def compose(self) -> ComposeResult:
        from textual.widgets import OptionList  # loaded when a list is opened, not before the first paint
        from textual.widgets.option_list import Option

        with Vertical(id="dialog", classes="choice-dialog"):
            yield Static(self.title_text, classes="dialog-title")
            yield OptionList(*(Option(shown, id=value) for shown, value in self.options), id="choices")

    def on_mount(self) -> None:
        choices = self.query_one("#choices")
        choices.highlighted = next(i for i, (_shown, value) in enumerate(self.options) if value == self.value)
        choices.focus()

    def on_key(self, event: events.Key) -> None:
        """Typing searches: each character extends the search unless SEARCH_RESET seconds passed since the last."""
        if event.character is None or not event.is_printable:
            return
        event.stop()
        event.prevent_default()
        self.search = (self.search if event.time - self.typed_at < SEARCH_RESET else "") + event.character.lower()
        self.typed_at = event.time
        found = [(shown.lower().find(self.search), i) for i, (shown, _value) in enumerate(self.options)]
        best = min(((at, i) for at, i in found if at >= 0), default=None)
        if best is not None:
            choices = self.query_one("#choices")
            choices.highlighted = best[1]
            choices.scroll_to_highlight()

    def on_option_list_option_selected(self, event) -> None:  # type: ignore[no-untyped-def]
        event.stop()
        self.dismiss(event.option.id)

    def action_keep(self) -> None:
        self.dismiss(None)
