"""The installer app and its factory (used by ``phyllome-install``, ``--sandbox`` and the tests)."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.binding import Binding

from phyllome_installer import __version__
from phyllome_installer.core.errors import EXIT_FAILED, EXIT_INTERRUPTED
from phyllome_installer.core.files import read_bounded
from phyllome_installer.frontend import SANDBOX_PLACEHOLDER, Discovered, Installer

from . import console as console_theme
from .keys import KeysInOrder
from .welcome import WelcomeScreen
from .widgets import ConfirmQuit

# Only the first screen (Welcome) loads before the first paint; every other screen is imported where it is shown.

if TYPE_CHECKING:  # pydantic models load after the first paint
    from phyllome_installer.answers import InstallConfig
    from phyllome_installer.bootanswers import Boot
    from phyllome_installer.discover import Discovery
    from storage.probe import Disk, MachineProfile



def _table(data: dict, key: str) -> dict:
    """``data[key]`` when it is a table, else an empty one (a partial answer file is not validated yet)."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}

class InstallerApp(console_theme.FocusedRow, KeysInOrder, App[int]):
    CSS_PATH = "installer.tcss"
    TITLE = "Phyllome OS installer"
    SUB_TITLE = __version__
    # Ctrl+C is Ctrl+Q: both ask first. The command palette is off: the footer and F1 list every action.
    BINDINGS = [Binding("ctrl+q", "request_quit", "Quit", priority=True),
                Binding("ctrl+c", "request_quit", "Quit", show=False, priority=True)]
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, installer: Installer, *, answers: Path | None = None, log_path: Path | None = None,
                 ansi_color: bool = True, discovery: Discovery | None = None, boot: Boot | None = None,
                 console: bool | None = None) -> None:
        self.console_theme = console_theme.wanted() if console is None else console
        """The console theme (screens/console.py): on a Linux VT or with few colours."""
        console_theme.install()
        super().__init__(ansi_color=ansi_color, css_path=console_theme.css_paths(self.CSS_PATH, self.console_theme))
        self.installer = installer
        self.log_path = log_path or installer.log_path
        self.draft: dict[str, Any] = {}
        self.secrets: dict[str, tuple[str, str]] = {}
        """What was typed in the secret fields (both copies), kept in memory so Back and forward keep it."""
        self.chosen_disk: Disk | None = None
        self.busy = False
        """An install is running (its worker holds the disk): quitting stops it at a safe point first."""
        self.phase = "idle"
        """What the quit dialog says: idle (nothing written), writing, done or failed."""
        self.quit_requested = False
        """The user asked to quit while the install was writing: the install is stopping."""
        self.confirmed_identity: str | None = None
        """The identity (Disk.identity) of the disk confirmed on the summary: the install refuses any other."""
        self.log_sink = None
        self._machine: MachineProfile | None = None
        self.base: dict[str, Any] = {}
        self.first_missing = 1
        self.discovery = discovery
        """When given, the app starts with the answer-file discovery of `phyllome-install install`."""
        self.cli_answers = answers
        self.boot = boot
        """Where the initramfs left its outcome; None: /run/phyllome."""
        self.discovered: Discovered | None = None
        if answers is not None and discovery is None:
            self._prefill(answers)

    @property
    def sandboxed(self) -> bool:
        return self.installer.sandbox is not None

    def target_line(self) -> str:
        if self.sandboxed:
            return "Target: the sandbox disk image (safe: no real disk is touched)."
        return "Target: a disk of this computer, chosen in the next step."

    # ------------------------------------------------------------------ the machine (probed once, in a worker)
    def machine(self) -> MachineProfile:
        if self._machine is None:
            self._machine = self.installer.machine()
        return self._machine

    # ------------------------------------------------------------------ answers
    def _prefill(self, source: Path | bytes) -> None:
        """Partial answers: fill what the file gives; the TUI opens on the first step it does not answer."""
        import tomllib

        from phyllome_installer.answers.files import loads_guarded  # only with a file: not before first paint
        from phyllome_installer.answers.values import KEYMAP_PATTERN

        try:
            raw = source if isinstance(source, bytes) else read_bounded(source)
            data = loads_guarded(raw.decode("utf-8-sig"))  # a deeply nested file is refused, not a crash
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return
        self.base = data
        # A partial file is not validated yet: each value is taken only where it has the type a screen expects.
        host, storage = _table(data, "host"), _table(data, "storage")
        users = data.get("users") if isinstance(data.get("users"), list) else []
        user = users[0] if users and isinstance(users[0], dict) else {}
        for key, value in (("keyboard", host.get("keyboard")), ("disk", storage.get("disk")),
                           ("hostname", host.get("hostname")), ("timezone", host.get("timezone")),
                           ("user", user.get("name")), ("password", user.get("password"))):
            if isinstance(value, str) and value:
                self.draft[key] = value
        if "keyboard" in self.draft and not re.fullmatch(KEYMAP_PATTERN, self.draft["keyboard"]):
            del self.draft["keyboard"]  # loadkeys would take "-d" for an option: the Welcome step asks instead
        if isinstance(storage.get("encryption"), dict):
            self.draft["encryption"] = storage["encryption"]
        keys = user.get("ssh_keys")
        if isinstance(keys, list) and keys and isinstance(keys[0], str):
            self.draft["ssh_key"] = keys[0]
        answered = ["keyboard" in self.draft, "disk" in self.draft, "encryption" in self.draft,
                    "hostname" in self.draft and "user" in self.draft]
        self.first_missing = answered.index(False) + 1 if False in answered else 5

    def data(self) -> dict[str, Any]:
        draft = self.draft
        user: dict[str, Any] = {"name": draft.get("user", "")}
        if draft.get("password"):
            user["password"] = draft["password"]
        if draft.get("ssh_key"):
            user["ssh_keys"] = [draft["ssh_key"]]
        host = {**self.base.get("host", {}), "keyboard": draft.get("keyboard", "us"),
                "hostname": draft.get("hostname", "phyllome"), "timezone": draft.get("timezone", "UTC")}
        storage = {k: v for k, v in self.base.get("storage", {}).items() if k not in ("match", "wipe")}
        disk = SANDBOX_PLACEHOLDER if self.sandboxed else draft.get("disk")
        storage.update(disk=disk, encryption=draft.get("encryption", {"enabled": False}))
        payload = self.base.get("payload") or {"kind": "local", "repo": "/run/install/repo",
                                               "ref": "phyllome/x86_64/stable"}
        data = {"version": 1, "storage": storage, "payload": payload, "host": host, "users": [user]}
        for key in ("firstboot", "post"):
            if key in self.base:
                data[key] = self.base[key]
        return data

    def config(self) -> tuple[InstallConfig | None, list[str]]:
        from phyllome_installer.answers import validate_data

        result = validate_data(self.data(), unattended=False)
        return result.config, [f"{p.key}: {p.message}" for p in result.problems]

    #: Where an answer-file key's problem is shown on the Host and user screen.
    HOST_USER_FIELDS = (("host.hostname", "hostname"), ("host.timezone", "timezone"), ("users[0].name", "user"),
                        ("users[0].password", "pw1"), ("users[0].ssh_keys", "ssh"), ("users[0]", "pw1"))

    def check_host_user(self, hostname: str, timezone: str, user: str, password: str, ssh: str) -> dict[str, str]:
        """Problems of the host and user fields, by field id, in the user's words (every one at once)."""
        from phyllome_installer.answers import validate_data

        data = self.data()
        data["host"].update(hostname=hostname, timezone=timezone)
        data["users"] = [{"name": user, **({"password": password} if password else {}),
                          **({"ssh_keys": [ssh]} if ssh else {})}]
        result = validate_data(data, unattended=False, redactor=None)
        problems: dict[str, str] = {}
        for problem in result.problems:
            field = next((f for key, f in self.HOST_USER_FIELDS if problem.key.startswith(key)), None)
            if field is not None and field not in problems:
                message = problem.message
                problems[field] = message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
        return problems

    def as_installed(self, config: InstallConfig, action: str = "none") -> InstallConfig:
        """The config as the install used it, to save: in the sandbox its root filesystem and payload; on a disk,
        `wipe` naming the disk that was confirmed; `post.action` what was done after the install."""
        from phyllome_installer.sandbox import for_sandbox

        if self.installer.sandbox is not None:
            config = for_sandbox(config, self.installer.sandbox, SANDBOX_PLACEHOLDER)
        else:
            identity = self.confirmed_identity or ""
            wipe = identity.partition(":")[2] if identity.startswith(("serial:", "by-id:")) else config.storage.disk
            config = config.model_copy(update={"storage": config.storage.model_copy(update={"wipe": wipe})})
        post = config.post.model_copy(update={"action": action})
        return config.model_copy(update={"post": post})

    # ------------------------------------------------------------------ keyboard
    def set_keyboard(self, keymap: str) -> None:
        self.draft["keyboard"] = keymap
        if on_virtual_console():
            self.load_keymap(keymap)

    def load_keymap(self, keymap: str) -> bool:
        """The layout on this console from now on (the passphrase is typed with it); a layout that cannot be
        loaded is said, never silently left as the previous one."""
        try:
            result = self.installer.runner.run(["loadkeys", keymap], check=False)
            ok, why = result.ok, (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        except OSError as exc:
            ok, why = False, exc.strerror or str(exc)
        if not ok:
            logging.getLogger("phyllome.tui").warning("loadkeys %s: %s", keymap, why)
            self.notify(f"The layout {keymap} could not be loaded on this console ({why}): keys still follow the "
                        "previous layout.", severity="warning", timeout=20)
        return ok

    # ------------------------------------------------------------------ flow
    def on_mount(self) -> None:
        self.set_interval(0.5, self.watch_signals)
        if self.discovery is not None:
            from .discovered import DiscoveryScreen

            self.push_screen(DiscoveryScreen())  # replaced by start_with() when the discovery is done
            return
        self.start_interactive(switch=False)

    def start_with(self, found: Discovered) -> None:
        """Where the discovered answer file leads: a complete one to the summary (or, unattended, straight to the
        install), a partial one to the first step it does not answer, a broken one to its problems."""
        from .discovered import AnswerProblemsScreen
        from .progress import ProgressScreen

        self.discovered = found
        if found.state == "broken":
            self.switch_screen(AnswerProblemsScreen(found))
            return
        if found.data is not None:
            self._prefill(found.data)
            if "keyboard" in self.draft:
                self.set_keyboard(self.draft["keyboard"])
        if found.state == "complete" and found.config is not None:
            if found.unattended:
                self.installer.unattended = True  # its wipe must name the disk: checked by the plan
                self.busy = True
                self.switch_screen(ProgressScreen(found.config))
                return
            self.draft.setdefault("keyboard", found.config.host.keyboard)
            if "disk" not in self.draft and not self.sandboxed:
                self.draft["disk"] = self._planned_disk(found.config)
            if "disk" in self.draft or self.sandboxed:
                self.first_missing = 5
        self.start_interactive()

    def _planned_disk(self, config: InstallConfig) -> str | None:
        """The disk a complete file's [storage.match] picks (the summary shows and confirms it)."""
        try:
            return self.installer.plan(config, self.machine()).context.disk.path
        except Exception:
            return None

    def start_interactive(self, *, switch: bool = True) -> None:
        """The steps, with those the answers already give stacked below the first one they do not."""
        if switch:
            self.switch_screen(WelcomeScreen())
        else:
            self.push_screen(WelcomeScreen())
        if self.first_missing == 1:
            return  # the next steps are imported when they are shown
        from .disk import DiskScreen
        from .encryption import EncryptionScreen
        from .host_user import HostUserScreen
        from .summary import SummaryScreen

        for screen in (DiskScreen, EncryptionScreen, HostUserScreen, SummaryScreen)[: self.first_missing - 1]:
            self.push_screen(screen())

    def action_request_quit(self) -> None:
        if isinstance(self.screen, ConfirmQuit):
            return
        if self.quit_requested:
            self.notify("The install is stopping at the next safe point; then the result is shown.",
                        title="Stopping", timeout=4)
            return

        def answer(quit_now: bool | None) -> None:
            if not quit_now:
                return
            if self.busy:  # the install stops at its next safe point; the progress screen then shows the result
                self.quit_requested = True
                self.installer.stop.request("quit")
                if hasattr(self.screen, "stopping"):
                    self.screen.stopping()
                return
            self.quit_with(self.exit_code())

        self.push_screen(ConfirmQuit("writing" if self.busy else self.phase), answer)

    def exit_code(self) -> int:
        """0 unless an install failed or was stopped (then its exit code: 1, or 130 when interrupted)."""
        outcome = getattr(self, "outcome", None)
        if self.busy:
            return EXIT_INTERRUPTED
        if outcome is not None and not outcome.ok:
            return outcome.exit_code or EXIT_FAILED
        return 0

    def watch_signals(self) -> None:
        """SIGTERM, SIGHUP or SIGINT (from outside: the TUI reads Ctrl+C as a key) stop a running install through
        the shared Stop; when nothing runs, they end the TUI at once."""
        stop = self.installer.stop
        if stop.reason == "SIGHUP" and not self.busy:
            # The terminal is gone: Textual's shutdown would wait forever to write to it, holding the install lock.
            # Nothing runs (a running install has stopped and cleaned up by now): flush the log and leave.
            logging.shutdown()
            os._exit(EXIT_INTERRUPTED)
        if stop.reason and stop.reason != "quit" and not self.busy and self.phase != "done":
            self.quit_with(EXIT_INTERRUPTED)

    def finish(self, action: str | None) -> None:
        if action and not self.sandboxed:
            from phyllome_installer.frontend import after_install

            problem = after_install(self.installer.runner, action)
            if problem:  # the Done screen stays: the person can power off, or quit to the shell
                logging.getLogger("phyllome.tui").warning("%s", problem)
                self.notify(problem, severity="error", timeout=30)
                return
        self.quit_with(0)

    def quit_with(self, code: int) -> None:
        """End the TUI with this exit code (App.exit's first argument is the result, not the exit code)."""
        self.exit(code, return_code=code)


def on_virtual_console() -> bool:
    try:
        return os.environ.get("TERM") == "linux" and os.ttyname(sys.stdin.fileno()).startswith("/dev/tty")
    except OSError:
        return False


def create_installer_app(installer: Installer, *, answers: Path | None = None, log_path: Path | None = None,
                         discovery: Discovery | None = None, boot: Boot | None = None,
                         console: bool | None = None) -> InstallerApp:
    return InstallerApp(installer, answers=answers, log_path=log_path, discovery=discovery, boot=boot,
                        console=console)
