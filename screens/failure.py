"""The end of a failed or stopped install, or of an error before the install could start."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Static

from phyllome_installer.core.errors import EXIT_FAILED

from .widgets import Step


class FailureScreen(Step):
    STEP = 7
    STEP_TITLE = "Failed"
    HELP = "The install stopped. The log has every command and its output. Retry goes back to the summary."
    BINDINGS = [Binding("r", "retry", "Retry"), Binding("q", "quit_app", "Quit"), Binding("f1", "help", "Help"),
                Binding("escape", "retry", show=False)]

    def __init__(self, failed_task: str, error: str, *, touched: bool = True, stopped: bool = False,
                 exit_code: int = EXIT_FAILED, pops: int = 2) -> None:
        """``touched``: the disk was written to (then it is not bootable); ``stopped``: the user (or a signal)
        stopped the install: no retry, only quit; ``pops``: how many screens Retry takes back (2: the summary)."""
        super().__init__()
        self.failed_task = failed_task
        self.error = error
        self.touched = touched
        self.stopped = stopped
        self.exit_code = exit_code or EXIT_FAILED
        self.pops = pops

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with VerticalScroll(classes="body", id="failure-box", can_focus=False):
            title = "The install was stopped." if self.stopped else "The install failed."
            yield Static(title, classes="title danger")
            if self.touched:
                yield Static("The disk is NOT bootable: run the installer again to install.", id="verdict",
                             classes="danger")
            else:
                yield Static("Nothing was written to the disk.", id="verdict")
            yield Static(f"Task: {self.failed_task}")
            yield Static(self.error, id="failure")
            yield Static(f"Log: {self.app.log_path}" if self.app.log_path else "No log was kept.")
        with Horizontal(classes="buttons", id="failure-buttons"):
            if not self.stopped:
                yield Button("Retry (r)", id="retry", variant="primary")
            yield Button("Quit (q)", id="quit")  # the exit code is for scripts: the log has it
        yield from self.compose_footer()

    def action_help(self) -> None:
        if self.stopped:  # no Retry here: a stop cannot be taken back
            from .widgets import HelpScreen

            self.app.push_screen(HelpScreen("Stopped", "The install was stopped. The log has every command and its "
                                            "output. Quit, then start the installer again to install."))
            return
        super().action_help()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action == "retry" and self.stopped)  # hidden from the footer too

    def on_mount(self) -> None:
        self.query_one("#quit" if self.stopped else "#retry", Button).focus()

    @on(Button.Pressed, "#retry")
    def action_retry(self) -> None:
        if self.stopped:
            return  # a stop cannot be taken back: quit, then start the installer again
        for _ in range(self.pops):
            self.app.pop_screen()

    @on(Button.Pressed, "#quit")
    def action_quit_app(self) -> None:
        self.app.quit_with(self.exit_code)
