"""Step 7: done. How to start, stop and reach the VM; the first boot will not run again."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Static

from ..hanging import Hanging
from .widgets import FirstBootStep


class DoneScreen(FirstBootStep):
    STEP = 7

    def __init__(self, steps: list[str], marker_removed: bool) -> None:
        super().__init__()
        self.steps = steps
        self.marker_removed = marker_removed

    def compose(self) -> ComposeResult:
        name = self.app.planned.spec.name
        uri = self.app.session.uri
        connect = "" if uri == "qemu:///system" else f" -c '{uri}'"
        text = "\n".join([
            *(f"[ok] {step}" for step in self.steps),
            "",
            f"Start it:        virsh{connect} start {name}",
            f"Stop it:         virsh{connect} shutdown {name}   (force: virsh destroy {name})",
            f"See its screen:  from another computer, with a SPICE or VNC viewer, at the address that "
            f"virsh{connect} domdisplay {name} prints",
            f"Autostart is ON: {name} starts with this computer, once the VM store is unlocked.",
            "",
            "The first boot is complete and will not run again." if self.marker_removed else
            "The first boot is complete.",
        ])
        yield from self.compose_header()
        with VerticalScroll(classes="body"):
            yield Static(f"Done: the VM {name} is ready.", classes="title ok")
            yield Hanging(text, id="done")
        with Horizontal(classes="buttons"):
            yield Button("Finish", id="finish", variant="primary")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#finish", Button).focus()

    def can_go_back(self) -> bool:  # the VM is made: nothing to go back to
        return False

    def action_back(self) -> None:
        pass

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.app.exit(0)
