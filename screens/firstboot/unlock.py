"""Step 1: unlock the VM store (only shown when it is locked): passphrase or recovery code, three tries, then try
again or go on without it. Also pushed from the review (``returning``): then it comes back there with the outcome."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Label, Static

from firstboot.unlock import LOCKED_MESSAGE, TRIES

from ..fields import Field
from .widgets import FirstBootStep


class UnlockScreen(FirstBootStep):
    STEP = 1

    class Tried(Message):
        """A passphrase or recovery code tried: whether it unlocked the store, or why it failed otherwise."""

        def __init__(self, ok: bool, error: str) -> None:
            super().__init__()
            self.ok, self.error = ok, error

    def __init__(self, returning: bool = False) -> None:
        super().__init__()
        self.tries = 0
        self.given_up = False
        self.returning = returning
        """Pushed by a later step that needs the store: dismissed with True (unlocked) or False, not on to checks."""

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with Vertical(classes="body"):
            yield Static("The VM store is LOCKED: your virtual machines' disks are encrypted.", classes="title")
            yield Static("Type the passphrase you chose at install, or the recovery code you wrote down "
                         "(eight groups of four characters). Leave it empty and choose Skip to go on without "
                         "the store: no VM can be created or started until it is unlocked.")
            with Horizontal(classes="field"):
                yield Label("Passphrase or code")
                yield Field(password=True, id="secret")
            yield Static("", id="secret-error", classes="field-error")
        with Horizontal(classes="buttons"):
            yield Button("Unlock", id="unlock", variant="primary")
            yield Button("Try again", id="again", variant="primary")
            yield Button("Skip", id="skip")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#again", Button).display = False
        self.query_one("#secret", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not self.given_up:
            self._unlock()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "again":
            self._again()
            return
        if event.button.id == "skip":
            if self.given_up:
                self._next()
            else:
                self._skip("Skipped by the user. " + LOCKED_MESSAGE)
        else:
            self._unlock()

    def _unlock(self) -> None:
        field = self.query_one("#secret", Input)
        if not field.value:
            self.query_one("#secret-error", Static).update("Type the passphrase or the recovery code, or choose "
                                                           "Skip.")
            return
        secret, field.value = field.value, ""
        field.disabled = True
        self.query_one("#secret-error", Static).update("Unlocking... (this takes a second or two)")
        self._try(secret)

    @work(thread=True, exclusive=True)
    def _try(self, secret: str) -> None:
        try:
            ok, error = self.app.unlocker.try_secret(secret), ""
        except Exception as exc:  # fscrypt failed for another reason than a wrong secret
            ok, error = False, str(exc)
        self.post_message(self.Tried(ok, error))

    def on_unlock_screen_tried(self, message: Tried) -> None:
        ok, error = message.ok, message.error
        field = self.query_one("#secret", Input)
        field.disabled = False
        self.tries += 1
        if ok:
            self.app.result.add("unlock", f"the VM store is unlocked (try {self.tries})")
            self._next()
            return
        left = TRIES - self.tries
        message = error or "Wrong passphrase or recovery code."
        if left <= 0:
            self._skip(f"{TRIES} wrong tries. " + LOCKED_MESSAGE)
            return
        self.query_one("#secret-error", Static).update(f"{message} {left} tr{'y' if left == 1 else 'ies'} left.")
        field.focus()

    def _skip(self, message: str) -> None:
        self.app.result.add("unlock", message, ok=True)
        self.query_one("#secret", Input).disabled = True
        self.query_one("#secret-error", Static).update(message)
        self.query_one("#unlock", Button).display = False
        self.given_up = True
        self.query_one("#again", Button).display = True
        skip = self.query_one("#skip", Button)
        skip.label = "Continue without the VM store"
        skip.focus()

    def _again(self) -> None:
        """Three more tries: the person at the console may have mistyped, or found the recovery code since."""
        self.tries, self.given_up = 0, False
        self.query_one("#again", Button).display = False
        self.query_one("#unlock", Button).display = True
        self.query_one("#skip", Button).label = "Skip"
        self.query_one("#secret-error", Static).update("")
        field = self.query_one("#secret", Input)
        field.disabled = False
        field.focus()

    def _next(self) -> None:
        if self.returning:
            self.dismiss(self.app.unlocker.state() != "locked")
            return
        self.app.switch_screen(self.app.step("checks"))  # done with: Esc on the checks does not come back here
