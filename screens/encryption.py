"""The VM store's encryption and its passphrase."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Button, Checkbox, Input, Static

from phyllome_installer.core.facts import MIN_PASSPHRASE

from .fields import Field, Tick
from .host_user import HostUserScreen
from .widgets import FormField, Step


def _strength(passphrase: str) -> str:
    classes = sum(any(test(c) for c in passphrase) for test in (str.islower, str.isupper, str.isdigit,
                                                                 lambda c: not c.isalnum()))
    score = len(passphrase) + 4 * classes
    if len(passphrase) < MIN_PASSPHRASE:
        return f"too short (at least {MIN_PASSPHRASE} characters)"
    return "weak" if score < 20 else "fair" if score < 28 else "strong"


def encrypt_label(on: bool) -> str:
    """The checkbox's state in words beside its mark ([x]/[ ]): a VT in monochrome shows no colour."""
    return "Encrypt the VM store (recommended): " + ("ON" if on else "OFF, anyone can read the VMs' disks")


class EncryptionScreen(Step):
    STEP = 3
    HELP = ("Your virtual machines' disks are kept in an encrypted folder (fscrypt). The passphrase unlocks it.\n\n"
            "Type it twice. The keyboard layout in use is shown beside the field: check it before you type. "
            "At the end of the install you also get a recovery code: write it down.\n\n"
            "What you type is kept when you go back to an earlier step and forward again.")

    def compose(self) -> ComposeResult:
        draft = self.app.draft.get("encryption") or {}
        enabled = draft.get("enabled", True)
        given = str(draft.get("passphrase") or "")
        secret = self.app.secrets.get("passphrase", (given, given))
        yield from self.compose_header()
        with VerticalScroll(classes="body", can_focus=False):
            yield Static("Protect your virtual machines' disks", classes="title")
            yield Tick(encrypt_label(enabled), value=enabled, id="enabled", compact=True)
            yield FormField("Passphrase:", Field(secret[0], password=True, id="pass1", compact=True,
                                                 disabled=not enabled),
                            hint=Static("", id="layout", classes="hint"))
            yield FormField("Passphrase again:", Field(secret[1], password=True, id="pass2", compact=True,
                                                       disabled=not enabled))
            yield Static("", id="strength")
            yield Static("", id="kept", classes="hint-line")
            yield Static("", id="error", classes="warning")
            yield Button("Next: host and user", id="next", variant="primary")
        yield from self.compose_footer()

    def on_screen_resume(self) -> None:
        self.query_one("#layout", Static).update(f"layout: {self.app.draft.get('keyboard', 'us')}")

    def on_mount(self) -> None:
        self.on_screen_resume()
        first = self.query_one("#pass1", Input)
        if first.value:
            self.query_one("#kept", Static).update("The passphrase you typed before is kept (shown as dots).")
            self.rate(Input.Changed(first, first.value))
        (first if not first.disabled else self.query_one("#enabled")).focus()

    def action_back(self) -> None:
        self.remember()
        super().action_back()

    def remember(self) -> None:
        """Kept in memory while the installer runs, so Back and forward again keep what was typed."""
        self.app.secrets["passphrase"] = (self.query_one("#pass1", Input).value, self.query_one("#pass2", Input).value)

    @on(Input.Changed, "#pass1")
    def rate(self, event: Input.Changed) -> None:
        self.query_one("#strength", Static).update(f"Strength: {_strength(event.value)}" if event.value else "")

    @on(Checkbox.Changed, "#enabled")
    def toggle(self, event: Checkbox.Changed) -> None:
        event.checkbox.set_text(encrypt_label(event.value))
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
        errors = {"pass1": "", "pass2": ""}
        if enabled and len(first) < MIN_PASSPHRASE:
            errors["pass1"] = f"The passphrase needs at least {MIN_PASSPHRASE} characters."
        if enabled and first != second:
            errors["pass2"] = "The two passphrases differ."
        for name, text in errors.items():
            self.query_one(f"#{name}-field", FormField).set_error(text)
        self.query_one("#error", Static).update("Fix what is marked above." if any(errors.values()) else "")
        self.remember()
        if any(errors.values()):
            return
        self.app.draft["encryption"] = {"enabled": enabled, **({"passphrase": first} if enabled else {})}
        self.app.push_screen(HostUserScreen())
