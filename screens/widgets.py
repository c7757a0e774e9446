"""Shared pieces: the step header, the help and quit dialogs, and the base class of every step."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Button, Static

STEPS = ("Welcome", "Disk", "Encryption", "Host and user", "Summary", "Installing", "Done")


class StepHeader(Static):
    def __init__(self, step: int, title: str | None = None) -> None:
        super().__init__(f" Step {step} of {len(STEPS)} · {title or STEPS[step - 1]}", id="step")


def has_step_below(screen: Screen) -> bool:
    """A step lies below ``screen`` in the app's stack (the first, index 0, is Textual's own default screen; a
    dialog above ``screen`` is not one below it)."""
    stack = screen.app.screen_stack
    return screen in stack and stack.index(screen) > 1


class KeyBar(Static):
    """The screen's keys on its last line, as Textual's Footer shows them (" f1 Help  ^q Quit "): each shown binding
    of the focused widget, its screen and the app, one per action, dimmed where the action is disabled and left out
    where ``check_action`` hides it. Redrawn whenever the screen's bindings change (focus, state).

    One line of text instead of Footer's widget per key, which Footer mounts and then mounts again on the first
    change of bindings: on the first screen that was about 16 ms of the installer's first paint (issue 26, P1).
    Unlike Footer's keys, the line is not clickable: both apps are driven by the keyboard (a physical console)."""

    COMPONENT_CLASSES = {"key-bar--key", "key-bar--description", "key-bar--disabled"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        text-wrap: nowrap;
        color: $footer-foreground;
        background: $footer-background;
        & > .key-bar--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        & > .key-bar--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        & > .key-bar--disabled {
            text-style: dim;
        }
    }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.draw()

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        if self.is_attached and screen is self.screen:
            self.draw()

    def draw(self) -> None:
        key_style = self.get_component_rich_style("key-bar--key")
        description_style = self.get_component_rich_style("key-bar--description")
        disabled = self.get_component_rich_style("key-bar--disabled")
        line = Text()
        actions: set[str] = set()
        for _node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if not binding.show or binding.action in actions:
                continue
            actions.add(binding.action)
            start = len(line)
            line.append(f" {self.app.get_key_display(binding)} ", key_style)
            if binding.description:
                line.append(f"{binding.description} ", description_style)
            if not enabled:
                line.stylize(disabled, start)
        self.update(line)


class FormField(Vertical):
    """A labelled field: the label stays beside the input whatever it holds, and the field's error is shown right
    below it, in the user's words (every error of a screen at once)."""

    DEFAULT_CLASSES = "field"

    def __init__(self, label: str, field: Widget, *, hint: Widget | None = None) -> None:
        super().__init__(id=f"{field.id}-field")
        self.label = label
        self.field = field
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-row"):
            yield Static(self.label, classes="field-label")
            yield self.field
            if self.hint is not None:
                yield self.hint
        yield Static("", id=f"{self.field.id}-error", classes="field-error warning")

    def on_mount(self) -> None:
        self.query_one(".field-error").display = False

    def set_error(self, text: str) -> None:
        error = self.query_one(".field-error", Static)
        error.update(f"WARNING: {text}" if text else "")
        error.display = bool(text)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,enter", "dismiss", "Close")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"Help: {self.title_text}", classes="dialog-title")
            yield Static(self.text, id="help-text")
            yield Button("Close (Esc)", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)


class ConfirmQuit(ModalScreen[bool]):
    """Quit? Focus starts on staying, so Ctrl+Q then Enter never quits by accident. The wording fits ``state``:
    "idle" (nothing written yet), "writing" (an install is running: quitting stops it at a safe point), "done"
    (installed: the recovery code is not shown again) or "failed" (the disk is not bootable). ``True``/``False``
    are "writing"/"idle", as before."""

    BINDINGS = [Binding("escape,n", "answer(False)", "Stay"), Binding("y", "answer(True)", "Quit")]
    WORDING = {
        "idle": ("Quit the installer?", "Nothing has been written to any disk.", "Quit (y)", "Stay (n)"),
        "writing": ("Stop the install and quit?",
                    "WARNING: the install is writing to the disk. Stopping ends the command in progress, cleans "
                    "up and leaves the disk NOT bootable; run the installer again to install.",
                    "Stop the install (y)", "Keep installing (n)"),
        "done": ("Quit the installer?",
                 "Phyllome OS is installed. Have you written down the recovery code? It is not shown again.",
                 "Quit (y)", "Stay (n)"),
        "failed": ("Quit the installer?",
                   "The install did not finish: the disk is not bootable until an install succeeds.",
                   "Quit (y)", "Stay (n)"),
    }

    def __init__(self, state: str | bool = "idle") -> None:
        super().__init__()
        self.state = {True: "writing", False: "idle"}.get(state, state) if isinstance(state, bool) else state
        self.busy = self.state == "writing"

    def compose(self) -> ComposeResult:
        title, text, quit_label, stay_label = self.WORDING.get(self.state, self.WORDING["idle"])
        with Vertical(id="dialog"):
            yield Static(title, classes="dialog-title")
            yield Static(text, id="quit-text", classes="warning" if self.state != "idle" else "")
            with Horizontal(classes="buttons"):
                yield Button(stay_label, id="no", variant="primary")
                yield Button(quit_label, id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class Step(Screen):
    """A step of the installer: a header, Esc goes back (the screen below keeps what was typed), F1 helps."""

    STEP = 1
    STEP_TITLE: str | None = None
    """The header's name of this step, when not the one in STEPS (e.g. "Failed" instead of "Done")."""
    HELP = ""
    BINDINGS = [Binding("escape", "back", "Back"), Binding("f1", "help", "Help")]

    def compose_header(self) -> ComposeResult:
        yield StepHeader(self.STEP, self.STEP_TITLE)

    def compose_footer(self) -> ComposeResult:
        yield KeyBar()

    def can_go_back(self) -> bool:
        """A step below this one (under a dialog, the key line offers no Back)."""
        return has_step_below(self)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Esc is offered (in the footer) only where it goes back to something."""
        return self.can_go_back() if action == "back" else True

    def action_back(self) -> None:
        if self.can_go_back():
            self.app.pop_screen()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(STEPS[self.STEP - 1], self.HELP))
