"""The end of a successful install: the recovery code, saving the answers, reboot."""

from __future__ import annotations

import os
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Static

from .widgets import Step


class DoneScreen(Step):
    STEP = 7
    HELP = ("Phyllome OS is installed. Write down the recovery code: it is the only way into your VMs' disks if "
            "you forget the passphrase, and it is not shown again.\n\nS saves your answers (without any password "
            "or passphrase) so that you can repeat this install unattended.")
    BINDINGS = [Binding("s", "save", "Save answers"), Binding("f1", "help", "Help"),
                Binding("escape", "noop", show=False)]

    def __init__(self, config, recovery_codes: dict[str, str]) -> None:
        super().__init__()
        self.config = config
        self.codes = recovery_codes

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with VerticalScroll(classes="body", can_focus=False):
            yield Static("Done: Phyllome OS is installed.", classes="title")
            for directory, code in self.codes.items():
                yield Static(f"Recovery code for {directory}:\n  {code}\nWrite it down now: it is shown only once.",
                             classes="danger")
            yield Static("", id="saved")
            with Horizontal(classes="buttons"):
                sandbox = self.app.sandboxed
                yield Button("Reboot", id="reboot", variant="primary", disabled=sandbox)
                yield Button("Power off", id="poweroff", disabled=sandbox)
                yield Button("Stay (quit)", id="stay")
                yield Button("Save answers (s)", id="save")
        yield from self.compose_footer()

    def action_noop(self) -> None:
        pass

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        from phyllome_installer.answers import save

        path = Path(os.environ.get("PHYLLOME_SAVE_ANSWERS", "/root/phyllome-answers.toml"))
        try:
            save(self.config, path)
            self.query_one("#saved", Static).update(f"Answers saved to {path} (no secrets in it).")
        except OSError as exc:
            self.query_one("#saved", Static).update(f"Could not save to {path}: {exc.strerror}")

    @on(Button.Pressed, "#reboot, #poweroff, #stay")
    def finish(self, event: Button.Pressed) -> None:
        self.app.finish(event.button.id)
