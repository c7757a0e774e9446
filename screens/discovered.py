"""The start of the installer: the answer-file discovery, and the screen of a broken answer file.

The discovery is the one of ``phyllome-install install`` (phyllome_installer.discover, judged by
phyllome_installer.frontend.discover_answers); it may read a disk or the network, so it runs in a worker.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Static

from phyllome_installer.frontend import Discovered, discover_answers

from .widgets import Step


class DiscoveryScreen(Step):
    """Shown while the answer file is looked for; replaced by the first step as soon as that is known."""

    STEP = 1
    HELP = ("The installer looks for an answer file: --answers, the phyllome.answers= kernel argument (already "
            "fetched by the initramfs), or a partition labelled PHYLLOME-ANS.")
    BINDINGS = [Binding("escape", "noop", show=False)]

    class Done(Message):
        def __init__(self, discovered: Discovered) -> None:
            super().__init__()
            self.discovered = discovered

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with VerticalScroll(classes="body", can_focus=False):
            yield Static("Looking for an answer file ...", classes="title")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.discover()

    def action_noop(self) -> None:
        pass

    @work(thread=True, exclusive=True)
    def discover(self) -> None:
        app = self.app
        try:
            discovered = discover_answers(app.discovery, app.cli_answers, boot=app.boot)
            if discovered.state == "complete" and not app.sandboxed:
                app.machine()  # probed here, off the UI thread: the summary plans on it
        except Exception as exc:  # never a reason not to install interactively
            discovered = Discovered("broken", problems=(f"answer-file discovery failed: {exc}",))
        self.post_message(self.Done(discovered))

    def on_discovery_screen_done(self, message: Done) -> None:
        self.app.start_with(message.discovered)


class AnswerProblemsScreen(Step):
    """A broken answer file: every problem as FILE:LINE:COL, then the interactive installer."""

    STEP = 1
    HELP = ("The answer file found at start cannot be used as it is. Fix it (phyllome-install validate FILE "
            "shows the same problems) and start again, or go on: the installer asks every question.")
    BINDINGS = [Binding("escape", "noop", show=False), Binding("f1", "help", "Help")]

    def __init__(self, discovered: Discovered) -> None:
        super().__init__()
        self.discovered = discovered

    def compose(self) -> ComposeResult:
        found = self.discovered
        yield from self.compose_header()
        with VerticalScroll(classes="body", can_focus=False):
            if found.data is not None:
                yield Static("The answer file has problems: it is not used.", classes="title danger")
                yield Static(f"From: {found.source}")
            else:
                yield Static("No answer file could be used.", classes="title danger")
            yield Static("\n".join(found.problems), id="problems", classes="warning")
            with Horizontal(classes="buttons"):
                yield Button("Go on interactively", id="interactive", variant="primary")
                yield Button("Quit", id="quit")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#interactive", Button).focus()

    def action_noop(self) -> None:
        pass

    @on(Button.Pressed, "#interactive")
    def interactive(self) -> None:
        self.app.start_interactive()

    @on(Button.Pressed, "#quit")
    def quit_app(self) -> None:
        self.app.exit(0)
