"""Step 5: review. Every value of the VM and where it came from; X shows the libvirt domain XML; Create starts."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Static

from ..hanging import Hanging
from .widgets import FirstBootStep, TextViewer


class ReviewScreen(FirstBootStep):
    STEP = 5
    BINDINGS = [*FirstBootStep.BINDINGS, Binding("x", "xml", "Domain XML")]

    def compose(self) -> ComposeResult:
        planned = self.app.planned
        spec = planned.spec
        lines = [f"{key:<9} {value}\n{'':<9} from: {source}" for key, value, source in spec.summary()]
        lines += [f"note: {note}" for note in spec.notes]
        lines.append(f"autostart on; domain type {planned.host.domain_type}")
        yield from self.compose_header()
        with VerticalScroll(classes="body"):
            yield Static(f"The VM {spec.name} will be created as follows. Esc goes back to change it.",
                         classes="title")
            yield Hanging("\n".join(lines), id="review")
            yield Static("", id="locked", classes="warning")
        with Horizontal(classes="buttons"):
            yield Button("Create the VM", id="create", variant="primary")
            yield Button("Unlock the VM store", id="unlock", variant="primary")
            yield Button("Domain XML (X)", id="xml")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.show_store()

    def show_store(self, _unlocked: bool | None = None) -> None:
        """The VM's disk is made in the VM store: while it is locked, Create cannot work, so Unlock is offered."""
        try:
            locked, problem = self.app.unlocker.state() == "locked", ""
        except Exception as exc:  # fscrypt could not say: Create will tell, with the error
            locked, problem = False, f"The VM store's state cannot be read ({exc}); Create may fail."
        text = ("The VM store is LOCKED: the VM's disk is made in it, so Create waits until it is unlocked."
                if locked else problem)
        note = self.query_one("#locked", Static)
        note.update(text)
        note.display = bool(text)
        create, unlock = self.query_one("#create", Button), self.query_one("#unlock", Button)
        create.disabled, unlock.display = locked, locked
        (unlock if locked else create).focus()

    def action_xml(self) -> None:
        self.app.push_screen(TextViewer(f"Domain XML of {self.app.planned.spec.name}", self.app.planned.xml()))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "xml":
            self.action_xml()
            return
        if event.button.id == "unlock":
            self.app.push_screen(self.app.step("unlock", returning=True), self.show_store)
            return
        self.app.result.error = self.app.result.failed_step = None  # a retry starts clean
        self.app.push_screen(self.app.step("create"))
