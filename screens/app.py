"""The installer app and its factory (used by ``phyllome-install``, ``--sandbox`` and the tests)."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from phyllome_installer import __version__


class WelcomeScreen(Screen):
    """Step 1: welcome."""

    def compose(self) -> ComposeResult:
        yield Static("Step 1 of 7 · Welcome", id="step")
        with Vertical(id="body"):
            yield Static("Phyllome OS installer", id="title")
            yield Static(
                "This installs Phyllome OS, a host whose only job is to run your desktop "
                "as a fast virtual machine.",
                id="intro",
            )
            yield Static("", id="target")
        yield Footer()

    def on_mount(self) -> None:
        app = self.app
        target = "sandbox disk image (safe: no real disk is touched)" if getattr(app, "sandbox", False) \
            else "a disk of this machine"
        self.query_one("#target", Static).update(f"Target: {target}")


class InstallerApp(App[int]):
    CSS_PATH = "installer.tcss"
    TITLE = "Phyllome OS installer"
    SUB_TITLE = __version__
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, *, sandbox: bool = False, answers: Path | None = None, log_path: Path | None = None,
                 ansi_color: bool = True) -> None:
        super().__init__(ansi_color=ansi_color)
        self.sandbox = sandbox
        self.answers = answers
        self.log_path = log_path

    def on_mount(self) -> None:
        self.push_screen(WelcomeScreen())


def create_installer_app(*, sandbox: bool = False, answers: Path | None = None,
                         log_path: Path | None = None) -> InstallerApp:
    return InstallerApp(sandbox=sandbox, answers=answers, log_path=log_path)
