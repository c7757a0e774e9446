"""The installer's steps, in order. Screens collect values; the headless Installer does the work."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import Button, Checkbox, DataTable, Input, ProgressBar, RichLog, Select, Static

from phyllome_installer.core.progress import Event, LogLine, TaskFailed, TaskFinished, TaskProgress, TaskStarted
from phyllome_installer.frontend import confirmation_word, keymaps

from .widgets import Step

if TYPE_CHECKING:
    from storage.probe import Disk


def _strength(passphrase: str) -> str:
    classes = sum(any(test(c) for c in passphrase) for test in (str.islower, str.isupper, str.isdigit,
                                                                 lambda c: not c.isalnum()))
    score = len(passphrase) + 4 * classes
    if len(passphrase) < 8:
        return "too short (at least 8 characters)"
    return "weak" if score < 20 else "fair" if score < 28 else "strong"


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
            options = [(name, name) for name in keymaps()]
            yield Select(options, value=self.app.draft.get("keyboard", "us"), allow_blank=False, id="keyboard")
            yield Static("", id="readiness", classes="warning")
            yield Button("Next: choose the disk", id="next", variant="primary")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        warnings = self.app.installer.readiness()
        if warnings:
            self.query_one("#readiness", Static).update("Note: " + " ".join(warnings) + " The install can go on.")

    @on(Select.Changed, "#keyboard")
    def keyboard_changed(self, event: Select.Changed) -> None:
        if str(event.value) == self.app.draft.setdefault("keyboard", "us"):
            return  # the initial value, not a choice
        self.app.set_keyboard(str(event.value))
        self.query_one("#next", Button).focus()  # chosen: Enter goes on

    @on(Button.Pressed, "#next")
    def next(self) -> None:
        self.app.push_screen(DiskScreen())


class DiskScreen(Step):
    STEP = 2
    HELP = ("Choose the disk to install on. The WHOLE disk is erased.\n\n"
            "The disk you started the installer from is not listed. Disks that are in use, read-only or too "
            "small are shown with the reason and cannot be chosen.")

    class Probed(Message):
        def __init__(self, disks: list[Disk], error: str = "") -> None:
            super().__init__()
            self.disks = disks
            self.error = error

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with Vertical(classes="body"):
            yield Static("Which disk should hold Phyllome OS? Everything on it will be erased.", classes="title")
            yield Static("Looking for disks ...", id="status")
            yield DataTable(id="disks", cursor_type="row", zebra_stripes=False)
            yield Static("", id="reason", classes="warning")
            yield Button("Use this disk", id="next", variant="primary", disabled=True)
        yield from self.compose_footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Disk", "Model", "Size", "Serial", "Bus", "What is on it")
        self.disks: list[Disk] = []
        self.probe()

    @work(thread=True, exclusive=True)
    def probe(self) -> None:
        try:
            machine = self.app.machine()
            self.post_message(self.Probed([d for d in machine.disks if "boot_medium" not in d.flags]))
        except Exception as exc:  # shown on screen; the log has the details
            self.post_message(self.Probed([], str(exc)))

    def on_disk_screen_probed(self, message: Probed) -> None:
        from storage.probe import human_size

        table = self.query_one(DataTable)
        table.clear()
        self.disks = message.disks
        for disk in self.disks:
            contents = ", ".join(disk.os) or (f"{len(disk.partitions)} partitions" if disk.has_data else "empty")
            if disk.flags:
                contents = "NOT USABLE: " + "; ".join(disk.flags.values())
            table.add_row(disk.path.rsplit("/", 1)[-1], disk.model[:22], human_size(disk.size), disk.serial[-12:],
                          disk.transport, contents[:40], key=disk.path)
        status = self.query_one("#status", Static)
        if message.error:
            status.update(f"Could not list the disks: {message.error}")
        elif not self.disks:
            status.update("No disk can hold Phyllome OS on this machine.")
        else:
            status.update(f"{len(self.disks)} disk(s). Use the arrows and Enter.")
            chosen = self.app.draft.get("disk")
            for row, disk in enumerate(self.disks):
                if disk.path == chosen:
                    table.move_cursor(row=row)
            table.focus()
            self._show(table.cursor_row)

    def _show(self, row: int) -> None:
        if not 0 <= row < len(self.disks):
            return
        disk = self.disks[row]
        reason = self.query_one("#reason", Static)
        button = self.query_one("#next", Button)
        reason.update("" if disk.usable else f"{disk.path} cannot be used: " + "; ".join(disk.flags.values()))
        button.disabled = not disk.usable

    @on(DataTable.RowHighlighted)
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show(event.cursor_row)

    @on(DataTable.RowSelected)
    def selected(self, event: DataTable.RowSelected) -> None:
        self._show(event.cursor_row)
        self.choose()

    @on(Button.Pressed, "#next")
    def choose(self) -> None:
        row = self.query_one(DataTable).cursor_row
        if 0 <= row < len(self.disks) and self.disks[row].usable:
            self.app.draft["disk"] = self.disks[row].path
            self.app.chosen_disk = self.disks[row]
            self.app.push_screen(EncryptionScreen())


class EncryptionScreen(Step):
    STEP = 3
    HELP = ("Your virtual machines' disks are kept in an encrypted folder (fscrypt). The passphrase unlocks it.\n\n"
            "Type it twice. The keyboard layout in use is shown beside the field: check it before you type. "
            "At the end of the install you also get a recovery code: write it down.")

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with VerticalScroll(classes="body", can_focus=False):
            yield Static("Protect your virtual machines' disks", classes="title")
            yield Checkbox("Encrypt the VM store (recommended)", value=True, id="enabled")
            with Horizontal(classes="row"):
                yield Input(placeholder="passphrase", password=True, id="pass1")
                yield Static("", id="layout", classes="hint")
            yield Input(placeholder="the same passphrase again", password=True, id="pass2")
            yield Static("", id="strength")
            yield Static("", id="error", classes="warning")
            yield Button("Next: host and user", id="next", variant="primary")
        yield from self.compose_footer()

    def on_screen_resume(self) -> None:
        self.query_one("#layout", Static).update(f"layout: {self.app.draft.get('keyboard', 'us')}")

    def on_mount(self) -> None:
        self.on_screen_resume()
        self.query_one("#pass1", Input).focus()

    @on(Input.Changed, "#pass1")
    def rate(self, event: Input.Changed) -> None:
        self.query_one("#strength", Static).update(f"Strength: {_strength(event.value)}" if event.value else "")

    @on(Checkbox.Changed, "#enabled")
    def toggle(self, event: Checkbox.Changed) -> None:
        for name in ("#pass1", "#pass2"):
            self.query_one(name, Input).disabled = not event.value

    @on(Input.Submitted, "#pass1")
    def to_second(self) -> None:
        self.query_one("#pass2", Input).focus()

    @on(Input.Submitted, "#pass2")
    @on(Button.Pressed, "#next")
    def next(self) -> None:
        enabled = self.query_one("#enabled", Checkbox).value
        first, second = self.query_one("#pass1", Input).value, self.query_one("#pass2", Input).value
        error = ""
        if enabled and len(first) < 8:
            error = "The passphrase needs at least 8 characters."
        elif enabled and first != second:
            error = "The two passphrases differ."
        self.query_one("#error", Static).update(error)
        if error:
            return
        self.app.draft["encryption"] = {"enabled": enabled, **({"passphrase": first} if enabled else {})}
        self.app.push_screen(HostUserScreen())


class HostUserScreen(Step):
    STEP = 4
    HELP = ("The name of this computer on the network, its time zone (type to search, Right accepts the "
            "suggestion), and the administrator account: a password typed twice, or an SSH public key, or both.")

    def compose(self) -> ComposeResult:
        from phyllome_installer.answers import timezones

        draft = self.app.draft
        yield from self.compose_header()
        with VerticalScroll(classes="body", can_focus=False):
            yield Static("This computer and its administrator", classes="title")
            yield Input(draft.get("hostname", "phyllome"), placeholder="hostname", id="hostname")
            yield Input(draft.get("timezone", "UTC"), placeholder="time zone, e.g. Europe/Paris", id="timezone",
                        suggester=SuggestFromList(sorted(timezones()), case_sensitive=False))
            yield Input(draft.get("user", ""), placeholder="administrator user name", id="user")
            yield Input(placeholder="password", password=True, id="pw1")
            yield Input(placeholder="the same password again", password=True, id="pw2")
            yield Input(draft.get("ssh_key", ""), placeholder="or an SSH public key (ssh-ed25519 AAAA...)", id="ssh")
            yield Static("", id="error", classes="warning")
            yield Button("Next: summary", id="next", variant="primary")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#hostname", Input).focus()

    @on(Input.Submitted)
    def advance(self, event: Input.Submitted) -> None:
        if event.input.id == "ssh":
            self.next()
        else:
            self.focus_next()

    @on(Button.Pressed, "#next")
    def next(self) -> None:
        value = {name: self.query_one(f"#{name}", Input).value.strip()
                 for name in ("hostname", "timezone", "user", "ssh")}
        pw1, pw2 = self.query_one("#pw1", Input).value, self.query_one("#pw2", Input).value
        error = ""
        if pw1 != pw2:
            error = "The two passwords differ."
        elif not pw1 and not value["ssh"]:
            error = "Give a password or an SSH key, or the administrator cannot log in."
        problems = [] if error else self.app.check_host_user(value["hostname"], value["timezone"], value["user"],
                                                             pw1, value["ssh"])
        error = error or "\n".join(problems)
        self.query_one("#error", Static).update(error)
        if error:
            return
        self.app.draft.update(hostname=value["hostname"], timezone=value["timezone"], user=value["user"],
                              password=pw1, ssh_key=value["ssh"])
        self.app.push_screen(SummaryScreen())


class SummaryScreen(Step):
    STEP = 5
    HELP = ("Read this before you go on: the disk named in the warning is erased completely.\n\n"
            "To confirm, type what is asked (the end of the disk's serial number, its size, or yes), then Enter.")

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        # The warning and the confirmation stay on screen; only the plan between them scrolls.
        yield Static("", id="erase", classes="danger")
        with VerticalScroll(classes="body", id="plan-box", can_focus=False):
            yield Static("", id="plan")
        with Vertical(id="confirm-box"):
            yield Static("", id="ask")
            with Horizontal(classes="row"):
                yield Input(placeholder="confirmation", id="confirm")
                yield Button("Erase and install", id="install", variant="error", disabled=True)
            yield Static("", id="error", classes="warning")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        config, problems = self.app.config()
        error = self.query_one("#error", Static)
        if config is None:
            error.update("The answers have problems:\n" + "\n".join(problems))
            return
        try:
            plan = self.app.installer.plan(config, self.app.machine())
        except Exception as exc:
            error.update(f"Cannot plan the install: {exc}")
            return
        disk = plan.context.disk
        self.word, ask = confirmation_word(self.app.chosen_disk or disk)
        self.query_one("#erase", Static).update(f"ALL DATA ON THIS DISK WILL BE ERASED: {disk.describe()}")
        ctx = plan.context
        lines = plan.render().split("\n\n")
        self.query_one("#plan", Static).update(
            "\n".join(lines[1].splitlines()) + f"\n\nPayload: {config.payload.kind} "
            f"{getattr(config.payload, 'ref', '')}\nKernel arguments: {' '.join(ctx.kargs())}\n"
            f"VM store: {'encrypted' if config.storage.encryption.enabled else 'NOT encrypted'}\n"
            f"First boot: {config.firstboot.describe()}")
        self.query_one("#ask", Static).update(ask + ":")
        self.plan_config = config
        confirm = self.query_one("#confirm", Input)
        confirm.value = ""
        confirm.focus()

    @on(Input.Changed, "#confirm")
    def check(self, event: Input.Changed) -> None:
        self.query_one("#install", Button).disabled = event.value.strip().lower() != getattr(self, "word", "\0")

    @on(Input.Submitted, "#confirm")
    @on(Button.Pressed, "#install")
    def install(self) -> None:
        if self.query_one("#install", Button).disabled:
            self.query_one("#error", Static).update("Type exactly what is asked to confirm.")
            return
        self.app.push_screen(ProgressScreen(self.plan_config))


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


class DoneScreen(Step):
    STEP = 7
    HELP = ("Phyllome OS is installed. Write down the recovery code: it is the only way into your VMs' disks if "
            "you forget the passphrase, and it is not shown again.\n\nS saves your answers (without any password "
            "or passphrase) so that you can repeat this install unattended.")
    BINDINGS = [Binding("s", "save", "Save answers"), Binding("f1", "help", "Help"),
                Binding("escape", "noop", show=False)]

    def __init__(self, config, recovery_codes: dict[str, str]) -> None:
        super().__init__()
        self.config = config
        self.codes = recovery_codes

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with VerticalScroll(classes="body", can_focus=False):
            yield Static("Done: Phyllome OS is installed.", classes="title")
            for directory, code in self.codes.items():
                yield Static(f"Recovery code for {directory}:\n  {code}\nWrite it down now: it is shown only once.",
                             classes="danger")
            yield Static("", id="saved")
            with Horizontal(classes="buttons"):
                sandbox = self.app.sandboxed
                yield Button("Reboot", id="reboot", variant="primary", disabled=sandbox)
                yield Button("Power off", id="poweroff", disabled=sandbox)
                yield Button("Stay (quit)", id="stay")
                yield Button("Save answers (s)", id="save")
        yield from self.compose_footer()

    def action_noop(self) -> None:
        pass

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        from phyllome_installer.answers import save

        path = Path(os.environ.get("PHYLLOME_SAVE_ANSWERS", "/root/phyllome-answers.toml"))
        try:
            save(self.config, path)
            self.query_one("#saved", Static).update(f"Answers saved to {path} (no secrets in it).")
        except OSError as exc:
            self.query_one("#saved", Static).update(f"Could not save to {path}: {exc.strerror}")

    @on(Button.Pressed, "#reboot, #poweroff, #stay")
    def finish(self, event: Button.Pressed) -> None:
        self.app.finish(event.button.id)


class FailureScreen(Step):
    STEP = 7
    HELP = "The install stopped. The log has every command and its output. Retry goes back to the summary."
    BINDINGS = [Binding("r", "retry", "Retry"), Binding("q", "quit_app", "Quit"), Binding("f1", "help", "Help"),
                Binding("escape", "retry", show=False)]

    def __init__(self, failed_task: str, error: str) -> None:
        super().__init__()
        self.failed_task = failed_task
        self.error = error

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with VerticalScroll(classes="body", can_focus=False):
            yield Static("The install failed.", classes="title danger")
            yield Static(f"Task: {self.failed_task}")
            yield Static(self.error, id="failure")
            yield Static(f"Log: {self.app.log_path}")
            with Horizontal(classes="buttons"):
                yield Button("Retry (r)", id="retry", variant="primary")
                yield Button("Quit (q)", id="quit")
        yield from self.compose_footer()

    @on(Button.Pressed, "#retry")
    def action_retry(self) -> None:
        self.app.pop_screen()  # this screen
        self.app.pop_screen()  # the progress screen: back to the summary

    @on(Button.Pressed, "#quit")
    def action_quit_app(self) -> None:
        self.app.exit(1)
