"""The whole flow on the sandbox disk, with the install really performed (root tier)."""

from __future__ import annotations

import pytest

from phyllome_installer.cli import install_main
from phyllome_installer.core.runner import RecordingRunner, SubprocessRunner
from phyllome_installer.sandbox import kernel_can_mount
from screens.done import DoneScreen
from screens.failure import FailureScreen
from screens.summary import SummaryScreen
from tests.tui.conftest import walk_to_summary

pytestmark = pytest.mark.root


async def install_through_the_tui(app, pilot):
    await walk_to_summary(pilot)
    assert isinstance(app.screen, SummaryScreen)
    await pilot.press(*"yes", "enter")
    for _ in range(240):  # the install runs in a worker; the screen follows its messages
        await pilot.pause(0.25)
        if isinstance(app.screen, DoneScreen | FailureScreen):
            break


async def test_whole_flow_ends_on_done_with_a_real_install(app_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("PHYLLOME_SAVE_ANSWERS", str(tmp_path / "saved.toml"))
    app = app_factory(SubprocessRunner(), base=tmp_path / "sandbox")
    async with app.run_test(size=(80, 25)) as pilot:
        await install_through_the_tui(app, pilot)
        assert isinstance(app.screen, DoneScreen), app.screen
        body = "\n".join(str(w.render()) for w in app.screen.query("Static"))
        assert "Recovery code for /var/lib/libvirt/images" in body
        await pilot.press("s")
        saved = (tmp_path / "saved.toml").read_text()
        assert "correct horse battery" not in saved and "a long password" not in saved
        assert 'timezone = "Europe/Paris"' in saved
        # What was done: the sandbox's root filesystem and payload, no reboot that did not happen.
        assert f'root_fs = "{"f2fs" if kernel_can_mount("f2fs") else "ext4"}"' in saved
        assert 'action = "none"' in saved and str(tmp_path / "sandbox" / "repo") in saved
        restored = tmp_path / "restored.toml"
        restored.write_text(saved.replace('# passphrase = "..."  (removed: secrets are never written)',
                                          'passphrase = "correct horse battery"')
                            .replace('# password = "..."  (removed: secrets are never written)',
                                     'password = "a long password"'))
        assert install_main(["validate", str(restored)]) == 0
    assert (tmp_path / "sandbox" / "disk.img").stat().st_size == 16 << 30


async def test_a_failing_task_shows_the_failure_screen_and_retry_returns_to_the_summary(app_factory, tmp_path):
    runner = RecordingRunner(delegate=SubprocessRunner())
    runner.fail(["ostree", "admin", "deploy"], stderr="error: injected deploy failure")
    app = app_factory(runner, base=tmp_path / "sandbox")
    async with app.run_test(size=(80, 25)) as pilot:
        await install_through_the_tui(app, pilot)
        assert isinstance(app.screen, FailureScreen)
        body = "\n".join(str(w.render()) for w in app.screen.query("Static"))
        assert "Task: ostree-deploy" in body and "injected deploy failure" in body
        await pilot.press("r")
        assert isinstance(app.screen, SummaryScreen)
