"""Step 6: creating. The engine runs the dry run (define, start paused, destroy) before it defines the VM; each
step appears as it starts. Success goes to Done; a failure to the failure screen (the marker stays)."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from phyllome_installer.core.errors import PhyllomeError
from phyllome_installer.core.interrupt import Interrupted

from .widgets import FirstBootStep


class CreateScreen(FirstBootStep):
    STEP = 6

    class Step(Message):
        """The engine started a step (its words)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Finished(Message):
        """The VM created (the engine's result), or why not."""

        def __init__(self, created, error: str) -> None:
            super().__init__()
            self.created, self.error = created, error

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with VerticalScroll(classes="body"):
            yield Static(f"Creating the VM {self.app.planned.spec.name}. Please wait.", classes="title")
            yield Static("", id="progress", markup=False)
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.lines: list[str] = []
        self.app.busy = True
        self._create()

    def can_go_back(self) -> bool:  # nothing to go back to while creating
        return False

    def action_back(self) -> None:
        pass

    def on_create_screen_step(self, message: Step) -> None:
        self.lines.append(f"[..] {message.text}")
        self.query_one("#progress", Static).update("\n".join(self.lines))

    @work(thread=True, exclusive=True, group="create")
    def _create(self) -> None:
        app = self.app
        vm = app.config.vm
        start = vm.start if vm is not None else True

        def on_step(text: str) -> None:
            app.stop.check()  # a quit while creating stops before the next step; the engine undoes the disk
            self.post_message(self.Step(text))

        try:
            created, error = app.session.create(app.planned, dry_run=False, start=start, on_step=on_step), ""
        except (PhyllomeError, Interrupted) as exc:
            created, error = None, str(exc)
        except Exception as exc:  # libvirt or a bug: shown with the log, never a traceback on the console
            created, error = None, f"{type(exc).__name__}: {exc}"
        self.post_message(self.Finished(created, error))

    def on_create_screen_finished(self, message: Finished) -> None:
        app, created, error = self.app, message.created, message.error
        app.busy = False
        spec = app.planned.spec
        if created is None:
            app.result.fail("vm", error)
            app.save()
            app.push_screen(app.step("failure", "Create the VM", error))
            return
        app.result.vm = {"name": spec.name, "uri": app.session.uri, "autostart": True,
                         "started": "started" in created.steps}
        app.result.add("vm", f"{spec.name}: " + "; ".join(created.steps))
        removed = app.done()
        app.push_screen(app.step("done", created.steps, removed))
