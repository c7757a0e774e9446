"""The install running: its tasks, the overall progress and the log.

The install runs in a worker thread that only posts messages. Ctrl+Q or Ctrl+C asks first, then requests a stop
(``installer.stop``): the engine stops at its next safe point and cleans up, and its result is shown here as it
comes, the Done screen first when the install finished anyway (the recovery code is never lost).
"""

from __future__ import annotations

import time

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import ProgressBar, RichLog, Static

from phyllome_installer.core.errors import EXIT_FAILED
from phyllome_installer.core.progress import Event, LogLine, TaskFailed, TaskFinished, TaskProgress, TaskStarted

from .done import DoneScreen
from .failure import FailureScreen
from .fields import StepsBar
from .widgets import ConfirmQuit, Step


class ProgressScreen(Step):
    STEP = 6
    HELP = ("The install is running. L shows or hides the log.\n\nCtrl+Q (or Ctrl+C) asks first; stopping ends the "
            "command in progress, cleans up and leaves the disk not bootable.")
    BINDINGS = [Binding("l", "toggle_log", "Log"), Binding("f1", "help", "Help"), Binding("escape", "noop", show=False)]

    class EngineEvent(Message):
        def __init__(self, event: Event) -> None:
            super().__init__()
            self.event = event

    class Finished(Message):
        def __init__(self, result) -> None:  # an engine.Result (imported when used: after the first paint)
            super().__init__()
            self.result = result

    def __init__(self, config, consent: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.consent = consent
        """The confirmed disk's identity: the install refuses a path that names another disk by now."""
        self.started = time.monotonic()
        self.tasks: dict[str, str] = {}
        self.titles: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with Vertical(classes="body"):
            yield Static("Installing Phyllome OS", classes="title")
            yield Static("", id="tasks", markup=False)  # "[ok]" is a state, not markup
            yield StepsBar(total=100, show_eta=False, id="overall")
            yield Static("", id="elapsed")
            yield Static("", id="stopping", classes="warning")
            yield RichLog(id="log", max_lines=2000, wrap=True, markup=False)
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#log").display = False
        self.set_interval(1, self.tick)
        self.app.busy = True
        self.app.phase = "writing"
        self.run_install()

    def tick(self) -> None:
        seconds = int(time.monotonic() - self.started)
        self.query_one("#elapsed", Static).update(f"Elapsed: {seconds // 60}:{seconds % 60:02d}")

    def stopping(self) -> None:
        """Called by the app once the user chose to stop."""
        self.query_one("#stopping", Static).update(
            "STOPPING: the command in progress is ended, then everything is cleaned up. Please wait ...")

    def action_toggle_log(self) -> None:
        log = self.query_one("#log")
        log.display = not log.display

    def action_noop(self) -> None:
        pass

    @work(thread=True, exclusive=True)
    def run_install(self) -> None:
        screen = self

        class Sink:
            def emit(self, event: Event) -> None:  # called on the engine's thread: only post messages
                screen.post_message(ProgressScreen.EngineEvent(event))

        self.app.log_sink = Sink()
        try:
            result = self.app.installer.install(self.config, Sink(), consent=self.consent)
        except Exception as exc:  # before the engine (sandbox attach, probe, lock): a result, never a traceback
            from phyllome_installer.engine import Result

            result = Result(ok=False, failed_task="prepare", error=str(exc) or type(exc).__name__,
                            exit_code=getattr(exc, "exit_code", EXIT_FAILED))
        finally:
            self.app.log_sink = None
        self.post_message(self.Finished(result))

    def on_progress_screen_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        if isinstance(event, TaskStarted):
            self.titles[event.task] = event.title
            self.tasks[event.task] = "running"
            self.total = event.total
            self.query_one("#overall", ProgressBar).update(progress=100 * (event.index - 1) / event.total)
        elif isinstance(event, TaskFinished):
            self.tasks[event.task] = "done"
            done = sum(state == "done" for state in self.tasks.values())
            self.query_one("#overall", ProgressBar).update(progress=100 * done / getattr(self, "total", done or 1))
        elif isinstance(event, TaskFailed):
            self.tasks[event.task] = "FAILED"
        elif isinstance(event, TaskProgress) and event.message:
            self.query_one("#log", RichLog).write(f"{event.task}: {event.message}")
        elif isinstance(event, LogLine):
            self.query_one("#log", RichLog).write(event.line)
        marks = {"running": "[..]", "done": "[ok]", "FAILED": "[!!]"}
        # The last lines that fit: at 80x24 the list must not push the progress bar off the screen.
        lines = [f"{marks[state]} {self.titles[task]}" for task, state in self.tasks.items()]
        self.query_one("#tasks", Static).update("\n".join(lines[-10:]))

    def on_progress_screen_finished(self, message: Finished) -> None:
        app = self.app
        app.busy = False
        result = app.outcome = message.result
        if isinstance(app.screen, ConfirmQuit):
            app.pop_screen()  # the result answers the question: the recovery code comes first
        if result.ok:
            app.phase = "done"
            note = ("The install had finished before it could stop: Phyllome OS is installed."
                    if app.quit_requested else "")
            app.push_screen(DoneScreen(self.config, result.recovery_codes, note=note))
        else:
            app.phase = "failed" if result.touched else "idle"
            app.push_screen(FailureScreen(result.failed_task, result.error, touched=result.touched,
                                          stopped=app.quit_requested or bool(app.installer.stop.reason),
                                          exit_code=result.exit_code))
