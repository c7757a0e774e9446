"""Pieces every first-boot screen shares: the step header, the quit dialog, the XML viewer, the base class."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import RadioButton, Static

from ..widgets import ConfirmQuit as InstallerConfirmQuit
from ..widgets import KeyBar, has_step_below

STEPS = ("Unlock", "Hardware checks", "Graphics", "Primary VM", "Review", "Creating", "Done")


class FirstBootStep(Screen):
    """A step: its header names it in words; Esc goes back to the step below (which keeps what was typed)."""

    STEP = 1
    BINDINGS = [Binding("escape", "back", "Back")]

    def compose_header(self) -> ComposeResult:
        yield Static(f" First boot · Step {self.STEP} of {len(STEPS)} · {STEPS[self.STEP - 1]}", id="step")

    def compose_footer(self) -> ComposeResult:
        yield KeyBar()

    def can_go_back(self) -> bool:
        """A step below this one, and no VM being created."""
        return has_step_below(self) and not getattr(self.app, "busy", False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Esc is offered (in the footer) only where it goes back to something."""
        return self.can_go_back() if action == "back" else True

    def action_back(self) -> None:
        if self.can_go_back():
            self.app.pop_screen()

    def on_unmount(self) -> None:
        """Back or Quit: the screen's workers are cancelled (a detection's child process is killed), and what they
        post to the screen afterwards is dropped with it."""
        self.app.workers.cancel_node(self)


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


class ConfirmQuit(InstallerConfirmQuit):
    """Quit? The installer's dialog (focus on Stay, so Enter after Ctrl+Q stays) in the first boot's words:
    "idle" or "writing" (the VM is being created)."""

    WORDING = {
        "idle": ("Quit the first boot?", "Nothing is lost: the first boot opens again at the next start. Your VMs "
                 "can also be set up later with phyllome-firstboot.", "Quit (y)", "Stay (n)"),
        "done": ("Quit?", "The first boot is complete: it does not run again. Your VMs can be changed later with "
                 "virsh.", "Quit (y)", "Stay (n)"),
        "writing": ("Quit the first boot?", "WARNING: the VM is being created. Quitting stops before its next step; "
                    "whatever was done is undone where it can be. The first boot runs again at the next start.",
                    "Quit (y)", "Stay (n)"),
    }


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
