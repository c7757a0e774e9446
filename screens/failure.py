"""The end of a failed or stopped install."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Static

from .widgets import Step


class FailureScreen(Step):
    STEP = 7
    HELP = "The install stopped. The log has every command and its output. Retry goes back to the summary."
    BINDINGS = [Binding("r", "retry", "Retry"), Binding("q", "quit_app", "Quit"), Binding("f1", "help", "Help"),
                Binding("escape", "retry", show=False)]

    def __init__(self, failed_task: str, error: str) -> None:
        super().__init__()
        self.failed_task = failed_task
        self.error = error

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with VerticalScroll(classes="body", can_focus=False):
            yield Static("The install failed.", classes="title danger")
            yield Static(f"Task: {self.failed_task}")
            yield Static(self.error, id="failure")
            yield Static(f"Log: {self.app.log_path}")
            with Horizontal(classes="buttons"):
                yield Button("Retry (r)", id="retry", variant="primary")
                yield Button("Quit (q)", id="quit")
        yield from self.compose_footer()

    @on(Button.Pressed, "#retry")
    def action_retry(self) -> None:
        self.app.pop_screen()  # this screen
        self.app.pop_screen()  # the progress screen: back to the summary

    @on(Button.Pressed, "#quit")
    def action_quit_app(self) -> None:
        self.app.exit(1)
