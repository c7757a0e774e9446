"""The first-boot app and its factory (``phyllome-firstboot``, the first-boot unit, and the tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding

from firstboot.session import Result, Session, finish, save_result
from firstboot.unlock import Unlocker
from phyllome_installer.core.errors import EXIT_INTERRUPTED
from phyllome_installer.core.interrupt import Stop

from .. import console as console_theme
from ..keys import KeysInOrder
from .checks import ChecksScreen
from .create import CreateScreen
from .done import DoneScreen
from .failure import FailureScreen
from .gpu import GpuScreen
from .review import ReviewScreen
from .unlock import UnlockScreen
from .vm import VmScreen
from .widgets import ConfirmQuit

#: The steps by name. Screens open the next one through the app (FirstBootApp.step), never by importing it: the
#: app knows every screen, no screen knows another (no import cycle among them).
STEP_SCREENS = {"unlock": UnlockScreen, "checks": ChecksScreen, "graphics": GpuScreen, "vm": VmScreen,
                "review": ReviewScreen, "create": CreateScreen, "failure": FailureScreen, "done": DoneScreen}


class FirstBootApp(console_theme.FocusedRow, KeysInOrder, App[int]):
    CSS_PATH = "firstboot.tcss"
    TITLE = "Phyllome OS first boot"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("ctrl+q,ctrl+c", "request_quit", "Quit", priority=True)]

    def __init__(self, session: Session, config: Any, *, log_path: Path | None = None, ansi_color: bool = True,
                 unlocker: Unlocker | None = None, console: bool | None = None) -> None:
        self.console_theme = console_theme.wanted() if console is None else console
        """The console theme (screens/console.py): on a Linux VT or with few colours."""
        console_theme.install()
        super().__init__(ansi_color=ansi_color, css_path=console_theme.css_paths(self.CSS_PATH, self.console_theme))
        self.session = session
        self.config = config
        self.log_path = log_path
        self.unlocker = unlocker or Unlocker(session.runner, store=session.store, root=session.root)
        self.result = Result("screens", log=str(log_path) if log_path else None)
        self.busy = False
        self.stop = Stop()
        vm = config.vm
        self.choices: dict[str, Any] = {"gpu": "auto", "family": None}
        if vm is not None:
            self.choices.update({k: v for k, v in vm.model_dump().items() if v is not None})
            self.choices["family"] = "windows" if (vm.os or "").startswith("win") else None
        self.planned = None

    def on_mount(self) -> None:
        try:
            locked = self.unlocker.state() == "locked"
        except Exception as exc:  # fscrypt unreadable: say so on the unlock screen rather than end here
            self.result.add("unlock", f"cannot read the VM store's state: {exc}", ok=False)
            locked = True
        self.push_screen(UnlockScreen() if locked else ChecksScreen())

    def step(self, name: str, *args: Any, **kwargs: Any):
        """A new screen of the step ``name`` (STEP_SCREENS), to push or switch to."""
        return STEP_SCREENS[name](*args, **kwargs)

    def back_to(self, name: str) -> None:
        """Pop screens until the step ``name`` is on top (or only the first step is left)."""
        while not isinstance(self.screen, STEP_SCREENS[name]) and len(self.screen_stack) > 2:
            self.pop_screen()

    def action_request_quit(self) -> None:
        state = "done" if isinstance(self.screen, DoneScreen) else "writing" if self.busy else "idle"

        def answer(quit_now: bool | None) -> None:
            if not quit_now:
                return
            if state == "done":  # the result is saved and the marker gone: nothing to record, nothing failed
                self.exit(0)
                return
            # Recorded for the journal and firstboot.json; the marker stays, so the first boot runs again.
            self.result.fail("quit", f"quit by the user on the {type(self.screen).__name__} step")
            self.save()
            if self.busy:
                self.stop.request("quit during VM creation")
                self.exit(EXIT_INTERRUPTED, return_code=EXIT_INTERRUPTED)
            else:
                self.exit(0)

        if not isinstance(self.screen, ConfirmQuit):
            self.push_screen(ConfirmQuit(state), answer)

    def save(self) -> None:
        """Record what happened so far (a failure: the marker stays)."""
        save_result(self.result, self.session.root)

    def done(self) -> bool:
        """Everything succeeded: save the result and remove the marker."""
        return finish(self.result, self.session.root)


def create_firstboot_app(session: Session, config: Any, *, log_path: Path | None = None,
                         unlocker: Unlocker | None = None, console: bool | None = None) -> FirstBootApp:
    return FirstBootApp(session, config, log_path=log_path, unlocker=unlocker, console=console)
