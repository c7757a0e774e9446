"""Shared pieces: the step header, the help and quit dialogs, and the base class of every step."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Static

STEPS = ("Welcome", "Disk", "Encryption", "Host and user", "Summary", "Installing", "Done")


class StepHeader(Static):
    def __init__(self, step: int) -> None:
        super().__init__(f" Step {step} of {len(STEPS)} · {STEPS[step - 1]}", id="step")


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,enter", "dismiss", "Close")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"Help: {self.title_text}", classes="dialog-title")
            yield Static(self.text, id="help-text")
            yield Button("Close (Esc)", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)


class ConfirmQuit(ModalScreen[bool]):
    BINDINGS = [Binding("escape,n", "answer(False)", "Stay"), Binding("y", "answer(True)", "Quit")]

    def __init__(self, busy: bool) -> None:
        super().__init__()
        self.busy = busy

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Quit the installer?", classes="dialog-title")
            if self.busy:
                yield Static("WARNING: the install is writing to the disk. Quitting now leaves the disk "
                             "unbootable; run the installer again to finish.", classes="warning")
            else:
                yield Static("Nothing has been written to any disk.")
            with Horizontal(classes="buttons"):
                yield Button("Quit (y)", id="yes", variant="error")
                yield Button("Stay (n)", id="no", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class Step(Screen):
    """A step of the installer: a header, Esc goes back (the screen below keeps what was typed), F1 helps."""

    STEP = 1
    HELP = ""
    BINDINGS = [Binding("escape", "back", "Back"), Binding("f1", "help", "Help")]

    def compose_header(self) -> ComposeResult:
        yield StepHeader(self.STEP)

    def compose_footer(self) -> ComposeResult:
        yield Footer()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(STEPS[self.STEP - 1], self.HELP))
