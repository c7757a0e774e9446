"""The first step: what the installer does, and the keyboard layout."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Button, Static

from phyllome_installer.frontend import keymaps

from . import keymap_names
from .choice import ChoiceField
from .widgets import Step


class WelcomeScreen(Step):
    STEP = 1
    HELP = ("Phyllome OS turns this computer into a host for your desktop, which runs as a virtual machine.\n\n"
            "Choose the keyboard layout first: it is used for everything you type next, passphrases included.\n"
            "Keys: arrows move, Enter selects, Tab goes to the next field, Esc goes back, F1 shows help, "
            "Ctrl+Q quits.")

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with VerticalScroll(classes="body", can_focus=False):
            yield Static("Welcome to the Phyllome OS installer", classes="title")
            yield Static("It installs Phyllome OS, a host whose only job is to run your desktop (Windows, "
                         "Linux, ...) as a fast virtual machine.")
            yield Static(self.app.target_line(), id="target")
            yield Static("Keyboard layout (used from now on):", classes="label")
            names, current = keymaps(), self.app.draft.get("keyboard", "us")
            if current not in names:
                names.append(current)  # an answer file's layout this live system does not ship: kept, and shown
            options = keymap_names.options(names)  # "German (no dead keys, de-nodeadkeys)"; the value: the name
            yield ChoiceField(options, current, title="Keyboard layout", id="keyboard")
            yield Static("", id="readiness", classes="warning")
            yield Button("Next: choose the disk", id="next", variant="primary")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        warnings = self.app.installer.readiness()
        if warnings:
            self.query_one("#readiness", Static).update("Note: " + " ".join(warnings) + " The install can go on.")

    @on(ChoiceField.Changed, "#keyboard")
    def keyboard_changed(self, event: ChoiceField.Changed) -> None:
        if str(event.value) == self.app.draft.setdefault("keyboard", "us"):
            return  # the initial value, not a choice
        self.app.set_keyboard(str(event.value))
        self.query_one("#next", Button).focus()  # chosen: Enter goes on

    @on(Button.Pressed, "#next")
    def next(self) -> None:
        from .disk import DiskScreen  # the next step loads after the first paint

        self.app.push_screen(DiskScreen())
