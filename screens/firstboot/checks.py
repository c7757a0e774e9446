"""Step 2: the hardware checks, each as PASS/WARN/FAIL/NOTE with its remedy; kernel-argument remedies applied as a
new ostree deployment (a bad argument rolls back by booting the previous entry); R re-checks."""

from __future__ import annotations

import logging

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Static

from .widgets import FirstBootStep

log = logging.getLogger("phyllome.firstboot.screens")


class ChecksScreen(FirstBootStep):
    STEP = 2
    BINDINGS = [*FirstBootStep.BINDINGS, Binding("r", "recheck", "Re-check")]

    class Checked(Message):
        """The checks' outcome: the checks and their kernel-argument fixes, or why they could not run."""

        def __init__(self, checks: list, fixes: dict[str, list[str]], error: str = "") -> None:
            super().__init__()
            self.checks, self.fixes, self.error = checks, fixes, error

    class Applied(Message):
        """The kernel arguments written into a new deployment (their text), or why not."""

        def __init__(self, applied: str, error: str) -> None:
            super().__init__()
            self.applied, self.error = applied, error

    def __init__(self) -> None:
        super().__init__()
        self.checks: list = []
        self.fixes: dict[str, list[str]] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with VerticalScroll(classes="body", id="checks-body"):
            yield Static("What this computer offers a desktop VM. Press R to check again after a change.",
                         classes="title")
            with Vertical(id="checks"):
                yield Static("Checking...")
            yield Static("", id="reboot", classes="warning")
        with Horizontal(classes="buttons"):
            yield Button("Next", id="next", variant="primary")
            yield Button("Apply the kernel arguments", id="fix")
            yield Button("Re-check (R)", id="recheck")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#fix", Button).display = False
        self.query_one("#next", Button).focus()
        self.action_recheck()

    def action_recheck(self) -> None:
        box = self.query_one("#checks", Vertical)
        box.remove_children()
        box.mount(Static("Checking..."))
        self._run_checks()

    @work(thread=True, exclusive=True, group="checks")
    def _run_checks(self) -> None:
        session = self.app.session
        try:
            checks = session.checks()
            self.post_message(self.Checked(checks, session.fixes(checks)))
        except Exception as exc:  # a bug or an unreadable machine: said on the screen, the traceback in the log
            log.warning("the hardware checks failed", exc_info=True)
            self.post_message(self.Checked([], {}, f"{type(exc).__name__}: {exc}"))

    def on_checks_screen_checked(self, message: Checked) -> None:
        if message.error:
            box = self.query_one("#checks", Vertical)
            box.remove_children()
            box.mount(Static(f"The checks could not run ({message.error}). Press R to check again; the details are "
                             "in the log.", markup=False))
            self.app.result.add("checks", message.error, ok=False)
            return
        self._show(message.checks, message.fixes)

    def _show(self, checks: list, fixes: dict[str, list[str]]) -> None:
        self.checks, self.fixes = checks, fixes
        rows = []
        for check in checks:  # the state in its own column: a long title or remedy wraps under its own text
            detail = check.remedy if check.status in ("WARN", "FAIL") else (check.found if check.status == "NOTE"
                                                                            else "")
            if detail:
                detail = ("\nfix: " if check.status in ("WARN", "FAIL") else "\n") + detail
            rows.append(Horizontal(Static(check.status, classes="check-status"),
                                   Static(check.title + detail, classes="check-text", markup=False),
                                   classes="check-row"))
        counts = {s: sum(c.status == s for c in checks) for s in ("PASS", "WARN", "FAIL", "NOTE")}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items())
        box = self.query_one("#checks", Vertical)
        box.remove_children()
        box.mount(Static(summary, classes="check-summary"), *rows)
        args = sorted({a for v in fixes.values() for a in v})
        fix = self.query_one("#fix", Button)
        fix.display = bool(args) and not self.app.session.pending_reboot
        fix.label = "Apply: " + " ".join(args) if args else "Apply"
        self._show_reboot()
        self.app.result.add("checks", summary)

    def _show_reboot(self) -> None:
        session = self.app.session
        text = ""
        if session.pending_reboot:
            applied = " ".join(session.applied_kargs)
            text = ("REBOOT PENDING: " + (f"{applied} take effect" if applied else "a new deployment takes effect")
                    + " at the next start. If it does not boot, choose the previous entry in the boot menu.")
        self.query_one("#reboot", Static).update(text)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "recheck":
            self.action_recheck()
        elif event.button.id == "fix":
            event.button.disabled = True
            self.query_one("#reboot", Static).update("Writing a new deployment with the kernel arguments...")
            self._apply(sorted({a for v in self.fixes.values() for a in v}))
        else:
            self.app.push_screen(self.app.step("graphics"))

    @work(thread=True, exclusive=True, group="fix")
    def _apply(self, args: list[str]) -> None:
        try:
            applied, error = self.app.session.apply_kargs(args), ""
        except Exception as exc:
            applied, error = "", str(exc)
        self.post_message(self.Applied(applied, error))

    def on_checks_screen_applied(self, message: Applied) -> None:
        applied, error = message.applied, message.error
        fix = self.query_one("#fix", Button)
        fix.disabled = False
        if error:
            self.query_one("#reboot", Static).update(f"FAILED to add the kernel arguments: {error}")
            self.app.result.add("kernel-arguments", error, ok=False)
            return
        fix.display = False
        self.app.result.add("kernel-arguments", f"{applied} in a new deployment (reboot pending)")
        self._show_reboot()
