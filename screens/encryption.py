"""The VM store's encryption and its passphrase."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Static

from .host_user import HostUserScreen
from .widgets import Step


def _strength(passphrase: str) -> str:
    classes = sum(any(test(c) for c in passphrase) for test in (str.islower, str.isupper, str.isdigit,
                                                                 lambda c: not c.isalnum()))
    score = len(passphrase) + 4 * classes
    if len(passphrase) < 8:
        return "too short (at least 8 characters)"
    return "weak" if score < 20 else "fair" if score < 28 else "strong"


class EncryptionScreen(Step):
    STEP = 3
    HELP = ("Your virtual machines' disks are kept in an encrypted folder (fscrypt). The passphrase unlocks it.\n\n"
            "Type it twice. The keyboard layout in use is shown beside the field: check it before you type. "
            "At the end of the install you also get a recovery code: write it down.")

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with VerticalScroll(classes="body", can_focus=False):
            yield Static("Protect your virtual machines' disks", classes="title")
            yield Checkbox("Encrypt the VM store (recommended)", value=True, id="enabled")
            with Horizontal(classes="row"):
                yield Input(placeholder="passphrase", password=True, id="pass1")
                yield Static("", id="layout", classes="hint")
            yield Input(placeholder="the same passphrase again", password=True, id="pass2")
            yield Static("", id="strength")
            yield Static("", id="error", classes="warning")
            yield Button("Next: host and user", id="next", variant="primary")
        yield from self.compose_footer()

    def on_screen_resume(self) -> None:
        self.query_one("#layout", Static).update(f"layout: {self.app.draft.get('keyboard', 'us')}")

    def on_mount(self) -> None:
        self.on_screen_resume()
        self.query_one("#pass1", Input).focus()

    @on(Input.Changed, "#pass1")
    def rate(self, event: Input.Changed) -> None:
        self.query_one("#strength", Static).update(f"Strength: {_strength(event.value)}" if event.value else "")

    @on(Checkbox.Changed, "#enabled")
    def toggle(self, event: Checkbox.Changed) -> None:
        for name in ("#pass1", "#pass2"):
            self.query_one(name, Input).disabled = not event.value

    @on(Input.Submitted, "#pass1")
    def to_second(self) -> None:
        self.query_one("#pass2", Input).focus()

    @on(Input.Submitted, "#pass2")
    @on(Button.Pressed, "#next")
    def next(self) -> None:
        enabled = self.query_one("#enabled", Checkbox).value
        first, second = self.query_one("#pass1", Input).value, self.query_one("#pass2", Input).value
        error = ""
        if enabled and len(first) < 8:
            error = "The passphrase needs at least 8 characters."
        elif enabled and first != second:
            error = "The two passphrases differ."
        self.query_one("#error", Static).update(error)
        if error:
            return
        self.app.draft["encryption"] = {"enabled": enabled, **({"passphrase": first} if enabled else {})}
        self.app.push_screen(HostUserScreen())
