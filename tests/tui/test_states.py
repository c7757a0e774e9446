"""States shown as they are (issue 21): what a screen says matches what is true."""

from __future__ import annotations

from phyllome_installer.core.progress import TaskFinished, TaskStarted
from phyllome_installer.core.runner import RecordingRunner
from phyllome_installer.engine import Result
from phyllome_installer.sandbox import Sandbox
from screens.app import create_installer_app
from tests.tui.conftest import MACHINE
from tests.tui.test_behaviour import FakeInstaller, start_install

SIZE = (80, 25)


class TwoTasks(FakeInstaller):
    """One task finished, the next one running until released."""

    def install(self, config, sink=None, consent=None) -> Result:
        sink.emit(TaskStarted("check", "Check the target", 1, 9))
        sink.emit(TaskFinished("check", 0.1))
        sink.emit(TaskStarted("partition", "Partition the disk", 2, 9))
        self.release.wait(30)
        return Result(ok=True, touched=True, recovery_codes={})


async def test_progress_shows_finished_tasks_as_ok(tmp_path):
    installer = TwoTasks(RecordingRunner(), sandbox=Sandbox(tmp_path / "sandbox"), proc=MACHINE / "proc",
                         sys_root=MACHINE / "sys", unattended=False)
    app = create_installer_app(installer)
    async with app.run_test(size=SIZE) as pilot:
        await start_install(app, pilot)
        for _ in range(40):
            await pilot.pause(0.05)
            shown = str(app.screen.query_one("#tasks").render())
            if "Partition" in shown:
                break
        installer.release.set()
        assert "[ok] Check the target" in shown and "[..] Partition the disk" in shown, shown


async def test_the_stopped_screen_offers_and_explains_only_what_is_there():
    from screens.failure import FailureScreen
    from tests.tui.test_console import installer_app

    app = installer_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.push_screen(FailureScreen("partition", "interrupted (quit); the disk is not bootable", stopped=True,
                                            exit_code=130))
        await pilot.pause()
        labels = [str(b.label) for b in app.screen.query("Button")]
        assert labels == ["Quit (q)"]  # no Retry, and no exit code: words for the person, the code for scripts
        await pilot.press("f1")
        await pilot.pause()
        help_text = str(app.screen.query_one("#help-text").render())
        assert "Retry" not in help_text and "start the installer again" in help_text


async def test_next_stays_on_screen_at_80x24_with_every_field_in_error():
    from textual.widgets import Input

    from tests.tui.conftest import to_host
    from tests.tui.test_console import installer_app

    app = installer_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await to_host(pilot)
        screen = app.screen
        for name, value in (("hostname", "not a host name!"), ("timezone", "Nowhere/Atlantis"),
                            ("user", "Not A User"), ("pw1", "short"), ("pw2", "other"), ("ssh", "not a key")):
            screen.query_one(f"#{name}", Input).value = value
        screen.query_one("#next").press()
        await pilot.pause()
        errors = [s for s in screen.query(".field-error") if s.display]
        assert len(errors) >= 5
        button = screen.query_one("#next")
        assert button.region.height and button.region.bottom <= 24 - 1, button.region  # above the footer


async def test_esc_is_offered_only_where_it_goes_back(tmp_path):
    from tests.tui import firstboot_helpers
    from tests.tui.test_console import cells, installer_app, text
    from tests.tui.test_firstboot_flow import settle
    from tests.tui.test_firstboot_snapshots import SavedHostSession
    from tests.unlockers import ScriptedUnlocker

    def footer(app) -> str:
        return text(cells(app)).splitlines()[-1]

    app = installer_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "Back" not in footer(app)  # the first step
        await pilot.press("tab", "enter")
        await pilot.pause(0.5)
        assert "esc Back" in footer(app)
    flow = firstboot_helpers.make_app(tmp_path, machine="this-ci-vm", unlocker=ScriptedUnlocker())
    flow.session = SavedHostSession(flow.session.runner, root=flow.session.root, uri="qemu:///system",
                                    store=flow.session.store)
    async with flow.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "Back" not in footer(flow)  # unlock, the first step
        await pilot.press(*"right passphrase", "enter")
        await settle(pilot)
        assert "Back" not in footer(flow)  # checks: the unlock is done, not a step to go back to
        await pilot.click("#next")
        await settle(pilot)
        assert "esc Back" in footer(flow)


async def test_the_summary_mentions_no_unlock_when_the_store_is_not_encrypted():
    from tests.tui.conftest import to_encryption
    from tests.tui.test_console import installer_app

    app = installer_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_encryption(pilot)
        app.screen.query_one("#enabled").value = False
        await pilot.pause()
        app.screen.query_one("#next").press()
        await pilot.pause()
        await pilot.press("enter")
        await pilot.press("end", *["backspace"] * 3, *"Europe/Paris", "enter")
        await pilot.press(*"admin", "enter", *"a long password", "enter", *"a long password", "enter", "enter")
        await pilot.pause(0.3)
        plan = str(app.screen.query_one("#plan").render())
        assert "NOT encrypted" in plan and "unlock" not in plan.split("First boot:")[1].splitlines()[0], plan
