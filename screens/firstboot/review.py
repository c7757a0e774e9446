"""Step 5: review. Every value of the VM and where it came from; X shows the libvirt domain XML; Create starts."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Static

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
            yield Static("\n".join(lines), id="review", markup=False)
        with Horizontal(classes="buttons"):
            yield Button("Create the VM", id="create", variant="primary")
            yield Button("Domain XML (X)", id="xml")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#create", Button).focus()

    def action_xml(self) -> None:
        self.app.push_screen(TextViewer(f"Domain XML of {self.app.planned.spec.name}", self.app.planned.xml()))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "xml":
            self.action_xml()
            return
        from .create import CreateScreen

        self.app.result.error = self.app.result.failed_step = None  # a retry starts clean
        self.app.push_screen(CreateScreen())
