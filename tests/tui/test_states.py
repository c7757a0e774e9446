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
