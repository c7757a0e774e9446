"""The install running: its tasks, the overall progress and the log."""

from __future__ import annotations

import time

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import ProgressBar, RichLog, Static

from phyllome_installer.core.progress import Event, LogLine, TaskFailed, TaskFinished, TaskProgress, TaskStarted

from .done import DoneScreen
from .failure import FailureScreen
from .widgets import Step


class ProgressScreen(Step):
    STEP = 6
    HELP = "The install is running. L shows or hides the log. Quitting now leaves the disk unbootable."
    BINDINGS = [Binding("l", "toggle_log", "Log"), Binding("f1", "help", "Help"), Binding("escape", "noop", show=False)]

    class EngineEvent(Message):
        def __init__(self, event: Event) -> None:
            super().__init__()
            self.event = event

    class Finished(Message):
        def __init__(self, result) -> None:
            super().__init__()
            self.result = result

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.started = time.monotonic()
        self.tasks: dict[str, str] = {}
        self.titles: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with Vertical(classes="body"):
            yield Static("Installing Phyllome OS", classes="title")
            yield Static("", id="tasks")
            yield ProgressBar(total=100, show_eta=False, id="overall")
            yield Static("", id="elapsed")
            yield RichLog(id="log", max_lines=2000, wrap=True, markup=False)
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#log").display = False
        self.set_interval(1, self.tick)
        self.app.busy = True
        self.run_install()

    def tick(self) -> None:
        seconds = int(time.monotonic() - self.started)
        self.query_one("#elapsed", Static).update(f"Elapsed: {seconds // 60}:{seconds % 60:02d}")

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
            result = self.app.installer.install(self.config, Sink())
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
        self.query_one("#tasks", Static).update("\n".join(
            f"{marks[state]} {self.titles[task]}" for task, state in self.tasks.items()))

    def on_progress_screen_finished(self, message: Finished) -> None:
        self.app.busy = False
        result = message.result
        if result.ok:
            self.app.push_screen(DoneScreen(self.config, result.recovery_codes))
        else:
            self.app.push_screen(FailureScreen(result.failed_task, result.error))
