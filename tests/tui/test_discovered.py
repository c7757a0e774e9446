"""The TUI runs the discovery of `phyllome-install install` at start: complete, partial, broken, failed, unattended.

The discovery is the real one (phyllome_installer.discover.Discovery) with its inputs in a temporary directory: the
kernel command line, /run/phyllome as the initramfs left it, and no PHYLLOME-ANS partition (blkid answers 2).
"""

from __future__ import annotations

import json
from pathlib import Path

from phyllome_installer.bootanswers import Boot
from phyllome_installer.core.runner import RecordingRunner
from phyllome_installer.discover import Discovery
from phyllome_installer.frontend import Installer
from phyllome_installer.sandbox import Sandbox
from screens.app import create_installer_app
from screens.discovered import AnswerProblemsScreen
from screens.disk import DiskScreen
from screens.failure import FailureScreen
from screens.progress import ProgressScreen
from screens.summary import SummaryScreen
from screens.welcome import WelcomeScreen
from tests.tui.conftest import MACHINE

SIZE = (80, 25)
URL = "https://answers.example.org/fleet.toml"

COMPLETE = """version = 1

[storage]
disk = "/dev/vda"

[storage.encryption]
passphrase = "correct horse battery"

[payload]
kind = "local"
repo = "/run/install/repo"
ref = "phyllome/x86_64/stable"

[host]
keyboard = "de"
hostname = "fleet-42"

[[users]]
name = "admin"
password = "a long enough password"
"""
PARTIAL = ('version = 1\n[host]\nkeyboard = "fr"\nhostname = "lab"\n[[users]]\nname = "ops"\n'
           'password = "a long password"\n')
BROKEN = 'version = 1\n[host]\nhostname = "-lab"\nkeybord = "fr"\n'


def text(screen) -> str:
    return "\n".join(str(w.render()) for w in screen.query("Static"))


class StubInstaller(Installer):
    """Records the install it is asked for instead of performing it (plans stay real)."""

    def install(self, config, sink=None, consent=None):
        from phyllome_installer.engine import Result

        self.installed = (config, self.unattended)
        return Result(ok=False, failed_task="check-target", error="stub: nothing installed in this test")


def make_app(tmp_path: Path, answers: str | None, cmdline: str = f"quiet phyllome.answers={URL}",
             status: str | None = None, runner: RecordingRunner | None = None):
    """As the live image is after boot: the initramfs fetched ``answers`` and wrote its status line."""
    run = tmp_path / "run"
    run.mkdir()
    if answers is not None:
        (run / "answers.toml").write_text(answers)
    if status is not None or answers is not None:
        (run / "boot-status").write_text((status or f"found phyllome.answers={URL}") + "\n")
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    runner = runner or RecordingRunner()
    runner.respond(["blkid", "-L"], returncode=2)
    discovery = Discovery(runner, cmdline=tmp_path / "cmdline")
    installer = StubInstaller(runner, sandbox=Sandbox(tmp_path / "sandbox"), proc=MACHINE / "proc",
                          sys_root=MACHINE / "sys")
    return create_installer_app(installer, discovery=discovery,
                                boot=Boot(answers=run / "answers.toml", status=run / "boot-status"))


async def settle(pilot, screen_type, tries: int = 40):
    for _ in range(tries):
        await pilot.pause(0.1)
        if isinstance(pilot.app.screen, screen_type):
            await pilot.pause(0.2)  # its on_mount has run
            return
    raise AssertionError(f"still on {pilot.app.screen!r}")


async def test_a_complete_file_opens_the_summary_with_the_plan_and_asks_for_the_typed_confirmation(tmp_path):
    app = make_app(tmp_path, COMPLETE)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, SummaryScreen)
        assert app.discovered.state == "complete"
        assert app.discovered.source == f"phyllome.answers={URL} (at boot)"
        body = text(app.screen)
        assert "ALL DATA ON THIS DISK WILL BE ERASED" in body
        assert "VM store: encrypted" in body
        assert app.data()["host"]["hostname"] == "fleet-42" and app.draft["keyboard"] == "de"
        # The confirmation is still typed: a wrong word does not install.
        await pilot.press(*"nope", "enter")
        await pilot.pause()
        assert isinstance(app.screen, SummaryScreen)
        assert "Type exactly what is asked" in text(app.screen)
        # Esc goes back through the steps the file answered.
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "HostUserScreen"


async def test_a_partial_file_prefills_and_opens_the_first_missing_step(tmp_path):
    app = make_app(tmp_path, PARTIAL)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, DiskScreen)
        assert app.discovered.state == "partial"
        assert app.draft["keyboard"] == "fr" and app.draft["hostname"] == "lab" and app.draft["user"] == "ops"


async def test_a_files_keyboard_this_live_system_does_not_ship_is_kept_and_listed(tmp_path):
    """A keymap name the schema takes but the live system does not list (a custom one) reached the layout field,
    which refused it and ended the app at start. It is kept, and listed under its name."""
    app = make_app(tmp_path, PARTIAL.replace('"fr"', '"xx-custom"'))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, DiskScreen)
        assert app.discovered.state == "partial" and app.draft["keyboard"] == "xx-custom"
        await pilot.press("escape")  # back to the Welcome step, built with the file's layout
        await settle(pilot, WelcomeScreen)
        field = app.screen.query_one("#keyboard")
        assert field.value == "xx-custom" and "xx-custom" in str(field.render())


def test_a_prefilled_keyboard_is_only_ever_a_keymap_name():
    """The screens take a file's values before its validation says all of it (a partial file): a keyboard that
    is not a keymap's name is not taken (loadkeys would read "-d" as an option); the Welcome step asks instead.
    (The discovery calls such a file broken first: this is the screens' own guard.)"""
    for given in ("-d", "--help", "de\x1b[2J", "us;reboot", "a" * 65, "de fr"):
        app = create_installer_app(Installer(RecordingRunner(), sandbox=Sandbox(Path("/nonexistent"))))
        app._prefill(f"version = 1\n[host]\nkeyboard = {json.dumps(given)}\nhostname = \"lab\"\n".encode())
        assert "keyboard" not in app.draft and app.draft["hostname"] == "lab", given
        assert app.first_missing == 1, given


async def test_a_broken_file_shows_its_problems_then_goes_on_interactively(tmp_path):
    app = make_app(tmp_path, BROKEN)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, AnswerProblemsScreen)
        body = text(app.screen)
        where = tmp_path / "run" / "answers.toml"
        assert f"{where}:3:1: host.hostname: '-lab' is not a valid hostname" in body
        assert f"{where}:4:1: host.keybord:" in body
        assert f"From: phyllome.answers={URL} (at boot)" in body
        await pilot.press("enter")
        await settle(pilot, WelcomeScreen)
        assert app.draft.get("hostname") is None  # nothing of the broken file is used
        assert len(app.screen_stack) == 2


async def test_a_refusal_at_boot_is_shown_then_the_install_is_interactive(tmp_path):
    status = f"failed phyllome.answers=http://10.0.2.2/a.toml: refused: its sha256 is {'1' * 64}"
    app = make_app(tmp_path, None, cmdline="phyllome.answers=http://10.0.2.2/a.toml", status=status)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, AnswerProblemsScreen)
        body = text(app.screen)
        assert "No answer file could be used." in body
        assert "at boot: phyllome.answers=http://10.0.2.2/a.toml: refused: its sha256 is" in body
        await pilot.press("enter")
        await settle(pilot, WelcomeScreen)


async def test_no_answer_file_is_the_interactive_installer(tmp_path):
    app = make_app(tmp_path, None, cmdline="quiet")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, WelcomeScreen)
        assert app.discovered.state == "none"
        assert len(app.screen_stack) == 2


async def test_wipe_consent_and_phyllome_unattended_skip_every_question(tmp_path):
    answers = COMPLETE.replace('disk = "/dev/vda"\n', 'disk = "/dev/vda"\nwipe = "/dev/vda"\n')
    app = make_app(tmp_path, answers, cmdline=f"phyllome.answers={URL} phyllome.unattended=1")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, FailureScreen)
        assert app.discovered.unattended
        assert [type(s) for s in app.screen_stack[1:]] == [ProgressScreen, FailureScreen]
        config, unattended = app.installer.installed
        assert unattended and config.storage.wipe == "/dev/vda" and config.host.hostname == "fleet-42"


async def test_without_the_kernel_argument_wipe_consent_still_asks(tmp_path):
    answers = COMPLETE.replace('disk = "/dev/vda"\n', 'disk = "/dev/vda"\nwipe = "/dev/vda"\n')
    app = make_app(tmp_path, answers)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, SummaryScreen)
        assert not app.discovered.unattended
