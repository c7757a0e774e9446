"""Pieces every first-boot screen shares: the step header, the quit dialog, the XML viewer, the base class."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, RadioButton, Static

STEPS = ("Unlock", "Hardware checks", "Graphics", "Primary VM", "Review", "Creating", "Done")


class FirstBootStep(Screen):
    """A step: its header names it in words; Esc goes back to the step below (which keeps what was typed)."""

    STEP = 1
    BINDINGS = [Binding("escape", "back", "Back")]

    def compose_header(self) -> ComposeResult:
        yield Static(f" First boot · Step {self.STEP} of {len(STEPS)} · {STEPS[self.STEP - 1]}", id="step")

    def compose_footer(self) -> ComposeResult:
        yield Footer()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2 and not getattr(self.app, "busy", False):
            self.app.pop_screen()


class Choice(RadioButton):
    """A radio button whose state is a mark, not only a colour: (*) chosen, ( ) not."""

    BUTTON_LEFT = BUTTON_INNER = BUTTON_RIGHT = ""

    def __init__(self, text: str, *, value: bool = False, name: str | None = None) -> None:
        self.text = text
        super().__init__(self._mark(value), value=value, name=name)

    def _mark(self, value: bool) -> str:
        return ("(*) " if value else "( ) ") + self.text

    def watch_value(self) -> None:
        self.label = self._mark(self.value)
        super().watch_value()


class ConfirmQuit(ModalScreen[bool]):
    """Quit? Focus starts on Stay, so Enter after Ctrl+Q stays."""

    BINDINGS = [Binding("escape,n", "answer(False)", "Stay"), Binding("y", "answer(True)", "Quit")]

    def __init__(self, busy: bool) -> None:
        super().__init__()
        self.busy = busy

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Quit the first boot?", classes="dialog-title")
            if self.busy:
                yield Static("WARNING: the VM is being created. Quitting stops before its next step; whatever "
                             "was done is undone where it can be. The first boot runs again at the next start.",
                             classes="warning")
            else:
                yield Static("Nothing is lost: the first boot opens again at the next start. Your VMs can also "
                             "be set up later with phyllome-firstboot.")
            with Horizontal(classes="buttons"):
                yield Button("Stay (n)", id="no", variant="primary")
                yield Button("Quit (y)", id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class TextViewer(ModalScreen[None]):
    """A long text (the domain XML), scrollable with the keyboard."""

    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="viewer"):
            yield Static(self.title_text + "  (Esc closes)", classes="dialog-title")
            with VerticalScroll(id="viewer-text"):
                yield Static(self.text, markup=False)

    def on_mount(self) -> None:
        self.query_one("#viewer-text").focus()
