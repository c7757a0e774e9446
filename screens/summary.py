"""The summary: every choice, the plan, and the typed consent to erase the disk."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Static

from phyllome_installer.frontend import confirmation_word

from .progress import ProgressScreen
from .widgets import Step


class SummaryScreen(Step):
    STEP = 5
    HELP = ("Read this before you go on: the disk named in the warning is erased completely.\n\n"
            "To confirm, type what is asked (the end of the disk's serial number, its size, or yes), then Enter.")

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        # The warning and the confirmation stay on screen; only the plan between them scrolls.
        yield Static("", id="erase", classes="danger")
        with VerticalScroll(classes="body", id="plan-box", can_focus=False):
            yield Static("", id="plan")
        with Vertical(id="confirm-box"):
            yield Static("", id="ask")
            with Horizontal(classes="row"):
                yield Input(placeholder="confirmation", id="confirm")
                yield Button("Erase and install", id="install", variant="error", disabled=True)
            yield Static("", id="error", classes="warning")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        config, problems = self.app.config()
        error = self.query_one("#error", Static)
        if config is None:
            error.update("The answers have problems:\n" + "\n".join(problems))
            return
        try:
            plan = self.app.installer.plan(config, self.app.machine())
        except Exception as exc:
            error.update(f"Cannot plan the install: {exc}")
            return
        disk = plan.context.disk
        self.word, ask = confirmation_word(self.app.chosen_disk or disk)
        self.query_one("#erase", Static).update(f"ALL DATA ON THIS DISK WILL BE ERASED: {disk.describe()}")
        ctx = plan.context
        lines = plan.render().split("\n\n")
        self.query_one("#plan", Static).update(
            "\n".join(lines[1].splitlines()) + f"\n\nPayload: {config.payload.kind} "
            f"{getattr(config.payload, 'ref', '')}\nKernel arguments: {' '.join(ctx.kargs())}\n"
            f"VM store: {'encrypted' if config.storage.encryption.enabled else 'NOT encrypted'}")
        self.query_one("#ask", Static).update(ask + ":")
        self.plan_config = config
        confirm = self.query_one("#confirm", Input)
        confirm.value = ""
        confirm.focus()

    @on(Input.Changed, "#confirm")
    def check(self, event: Input.Changed) -> None:
        self.query_one("#install", Button).disabled = event.value.strip().lower() != getattr(self, "word", "\0")

    @on(Input.Submitted, "#confirm")
    @on(Button.Pressed, "#install")
    def install(self) -> None:
        if self.query_one("#install", Button).disabled:
            self.query_one("#error", Static).update("Type exactly what is asked to confirm.")
            return
        self.app.push_screen(ProgressScreen(self.plan_config))
