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

UNATTENDED_POST_DELAY = 30.0
"""Seconds the recovery code stays on screen before an unattended install reboots or powers off."""


class DoneScreen(Step):
    STEP = 7
    HELP = ("Phyllome OS is installed. Write down the recovery code: it is the only way into your VMs' disks if "
            "you forget the passphrase, and it is not shown again.\n\nS saves your answers (without any password "
            "or passphrase) so that you can repeat this install unattended.")
    BINDINGS = [Binding("s", "save", "Save answers"), Binding("f1", "help", "Help"),
                Binding("escape", "noop", show=False)]

    def __init__(self, config, recovery_codes: dict[str, str], note: str = "") -> None:
        super().__init__()
        self.config = config
        self.codes = recovery_codes
        self.note = note
        self.saved_to: Path | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with VerticalScroll(classes="body", id="done-box", can_focus=False):
            yield Static("Done: Phyllome OS is installed.", classes="title")
            if self.note:
                yield Static(self.note, id="note", classes="warning")
            for directory, code in self.codes.items():
                yield Static(f"Recovery code for {directory}:\n  {code}\nWrite it down now: it is shown only once.",
                             classes="danger")
            yield Static("", id="saved")
        with Horizontal(classes="buttons", id="done-buttons"):
            sandbox = self.app.sandboxed
            yield Button("Reboot", id="reboot", variant="primary", disabled=sandbox)
            yield Button("Power off", id="poweroff", disabled=sandbox)
            yield Button("Quit", id="stay")
            yield Button("Save answers (s)", id="save")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#stay" if self.app.sandboxed else "#reboot", Button).focus()
        action = self.config.post.action
        if self.app.installer.unattended and action in ("reboot", "poweroff") and not self.app.sandboxed:
            # Unattended, [post] decides as it does for `phyllome-install install`; the code stays on screen a while.
            self.set_timer(UNATTENDED_POST_DELAY, lambda: self.app.finish(action))

    def action_noop(self) -> None:
        pass

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        self.save("none")

    def save(self, action: str) -> None:
        """The answers as this install used them (root filesystem, payload, the erased disk named in `wipe`) and
        what was done after it (``action``: none until Reboot or Power off is chosen, then saved again)."""
        from phyllome_installer.answers import save

        path = Path(os.environ.get("PHYLLOME_SAVE_ANSWERS", "/root/phyllome-answers.toml"))
        try:
            save(self.app.as_installed(self.config, action), path)
            self.saved_to = path
            self.query_one("#saved", Static).update(
                f"Answers saved to {path}: no passphrase or password in it (add them back to reuse it).")
        except OSError as exc:
            self.query_one("#saved", Static).update(f"Could not save to {path}: {exc.strerror}")

    @on(Button.Pressed, "#reboot, #poweroff, #stay")
    def finish(self, event: Button.Pressed) -> None:
        action = event.button.id
        if self.saved_to is not None and action in ("reboot", "poweroff"):
            self.save(action)  # the saved file says what was done
        self.app.finish(action)
