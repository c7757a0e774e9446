"""The installer app and its factory (used by ``phyllome-install``, ``--sandbox`` and the tests)."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.binding import Binding

from phyllome_installer import __version__
from phyllome_installer.core.files import read_bounded
from phyllome_installer.frontend import SANDBOX_PLACEHOLDER, Discovered, Installer

from .discovered import AnswerProblemsScreen, DiscoveryScreen
from .disk import DiskScreen
from .encryption import EncryptionScreen
from .host_user import HostUserScreen
from .progress import ProgressScreen
from .summary import SummaryScreen
from .welcome import WelcomeScreen
from .widgets import ConfirmQuit

if TYPE_CHECKING:  # pydantic models load after the first paint
    from phyllome_installer.answers import InstallConfig
    from phyllome_installer.bootanswers import Boot
    from phyllome_installer.discover import Discovery
    from storage.probe import Disk, MachineProfile


class InstallerApp(App[int]):
    CSS_PATH = "installer.tcss"
    TITLE = "Phyllome OS installer"
    SUB_TITLE = __version__
    BINDINGS = [Binding("ctrl+q", "request_quit", "Quit", priority=True)]

    def __init__(self, installer: Installer, *, answers: Path | None = None, log_path: Path | None = None,
                 ansi_color: bool = True, discovery: Discovery | None = None, boot: Boot | None = None) -> None:
        super().__init__(ansi_color=ansi_color)
        self.installer = installer
        self.log_path = log_path or installer.log_path
        self.draft: dict[str, Any] = {}
        self.chosen_disk: Disk | None = None
        self.busy = False
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
        try:
            raw = source if isinstance(source, bytes) else read_bounded(source)
            data = tomllib.loads(raw.decode("utf-8-sig"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return
        self.base = data
        host, storage = data.get("host", {}), data.get("storage", {})
        users = data.get("users") or [{}]
        for key, value in (("keyboard", host.get("keyboard")), ("disk", storage.get("disk")),
                           ("hostname", host.get("hostname")), ("timezone", host.get("timezone")),
                           ("user", users[0].get("name"))):
            if isinstance(value, str):
                self.draft[key] = value
        if isinstance(storage.get("encryption"), dict):
            self.draft["encryption"] = storage["encryption"]
        if users[0].get("password"):
            self.draft["password"] = users[0]["password"]
        if users[0].get("ssh_keys"):
            self.draft["ssh_key"] = users[0]["ssh_keys"][0]
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

    def check_host_user(self, hostname: str, timezone: str, user: str, password: str, ssh: str) -> list[str]:
        """Problems of the host and user fields, in the answer file's words."""
        from phyllome_installer.answers import validate_data

        data = self.data()
        data["host"].update(hostname=hostname, timezone=timezone)
        data["users"] = [{"name": user, **({"password": password} if password else {}),
                          **({"ssh_keys": [ssh]} if ssh else {})}]
        result = validate_data(data, unattended=False, redactor=None)
        return [f"{p.key}: {p.message}" for p in result.problems if p.key.startswith(("host", "users"))]

    # ------------------------------------------------------------------ keyboard
    def set_keyboard(self, keymap: str) -> None:
        self.draft["keyboard"] = keymap
        if on_virtual_console():
            self.installer.runner.run(["loadkeys", keymap], check=False)

    # ------------------------------------------------------------------ flow
    def on_mount(self) -> None:
        if self.discovery is not None:
            self.push_screen(DiscoveryScreen())  # replaced by start_with() when the discovery is done
            return
        self.start_interactive(switch=False)

    def start_with(self, found: Discovered) -> None:
        """Where the discovered answer file leads: a complete one to the summary (or, unattended, straight to the
        install), a partial one to the first step it does not answer, a broken one to its problems."""
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
        for screen in (DiskScreen, EncryptionScreen, HostUserScreen, SummaryScreen)[: self.first_missing - 1]:
            self.push_screen(screen())

    def action_request_quit(self) -> None:
        def answer(quit_now: bool | None) -> None:
            if quit_now:
                self.exit(0)

        self.push_screen(ConfirmQuit(self.busy), answer)

    def finish(self, action: str | None) -> None:
        if action in ("reboot", "poweroff") and not self.sandboxed:
            self.installer.runner.run(["systemctl", action], check=False)
        self.exit(0)


def on_virtual_console() -> bool:
    try:
        return os.environ.get("TERM") == "linux" and os.ttyname(sys.stdin.fileno()).startswith("/dev/tty")
    except OSError:
        return False


def create_installer_app(installer: Installer, *, answers: Path | None = None, log_path: Path | None = None,
                         discovery: Discovery | None = None, boot: Boot | None = None) -> InstallerApp:
    return InstallerApp(installer, answers=answers, log_path=log_path, discovery=discovery, boot=boot)
