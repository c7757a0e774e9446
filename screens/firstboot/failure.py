"""A step failed: which one, the error, where the log is; Retry goes back to the review (nothing is lost, the
first-boot marker stays, so the first boot also runs again at the next start)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Static

from phyllome_installer.core.errors import EXIT_FAILED

from .widgets import FirstBootStep


class FailureScreen(FirstBootStep):
    STEP = 6

    def __init__(self, step: str, error: str) -> None:
        super().__init__()
        self.step_name = step
        self.error = error

    def compose(self) -> ComposeResult:
        log = self.app.log_path or "the journal (journalctl -u phyllome-firstboot)"
        yield from self.compose_header()
        with VerticalScroll(classes="body"):
            yield Static(f"FAILED: {self.step_name}", classes="title error")
            yield Static(self.error, id="error", markup=False)
            yield Static(f"\nThe log is {log}.\nNothing was left half-made: the VM was not defined. The first "
                         "boot stays pending and opens again at the next start.", markup=False)
        with Horizontal(classes="buttons"):
            yield Button("Retry", id="retry", variant="primary")
            yield Button("Quit", id="quit")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#retry", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "quit":
            self.app.exit(EXIT_FAILED, return_code=EXIT_FAILED)
            return
        self.app.back_to("review")
