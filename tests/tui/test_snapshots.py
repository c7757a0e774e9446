"""Every screen at 80x25 (a Linux VT), and the longest ones at 80x24 too, compared with its saved SVG
(pytest-textual-snapshot; `--snapshot-update` to accept, then look at the SVGs)."""

from __future__ import annotations

from screens.done import DoneScreen
from screens.failure import FailureScreen
from tests.tui.conftest import to_disk, to_encryption, to_host, walk_to_summary

SIZE = (80, 25)


def steady(run_before):
    """The same steps, then every text field's cursor held still: a picture must not depend on the blink."""
    async def run(pilot):
        from textual.widgets import Input

        await run_before(pilot)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()
    return run


def test_welcome(snap_compare, app_factory):
    assert snap_compare(app_factory(), terminal_size=SIZE)


def test_disk(snap_compare, app_factory):
    assert snap_compare(app_factory(), terminal_size=SIZE, run_before=to_disk)


def test_encryption(snap_compare, app_factory):
    assert snap_compare(app_factory(), terminal_size=SIZE, run_before=steady(to_encryption))


def test_host_and_user(snap_compare, app_factory):
    assert snap_compare(app_factory(), terminal_size=SIZE, run_before=steady(to_host))


def test_summary(snap_compare, app_factory):
    assert snap_compare(app_factory(), terminal_size=SIZE, run_before=steady(walk_to_summary))


def test_help(snap_compare, app_factory):
    async def help_(pilot):
        await pilot.pause()
        await pilot.press("f1")
    assert snap_compare(app_factory(), terminal_size=SIZE, run_before=help_)


def test_quit(snap_compare, app_factory):
    async def quit_(pilot):
        await pilot.pause()
        await pilot.press("ctrl+q")
    assert snap_compare(app_factory(), terminal_size=SIZE, run_before=quit_)


def test_done(snap_compare, app_factory):
    async def done(pilot):
        await walk_to_summary(pilot)
        config, _ = pilot.app.config()
        await pilot.app.push_screen(DoneScreen(config, {"/var/lib/libvirt/images": "ABCD-EFGH-IJKL-MNOP-QRST-UVWX"
                                                                                   "-YZ23-4567"}))
        await pilot.pause()
    assert snap_compare(app_factory(), terminal_size=SIZE, run_before=done)


def test_failure(snap_compare, app_factory):
    async def failed(pilot):
        await pilot.pause()
        pilot.app.log_path = "/tmp/phyllome-install.log"
        await pilot.app.push_screen(FailureScreen("ostree-deploy", "command failed with exit code 1: ostree admin "
                                                  "deploy ...\n  | error: No space left on device"))
        await pilot.pause()
    assert snap_compare(app_factory(), terminal_size=SIZE, run_before=failed)


# 80x24: the screens with the most lines, their buttons on screen.
SMALL = (80, 24)


def test_host_and_user_80x24(snap_compare, app_factory):
    assert snap_compare(app_factory(), terminal_size=SMALL, run_before=steady(to_host))


def test_summary_80x24(snap_compare, app_factory):
    assert snap_compare(app_factory(), terminal_size=SMALL, run_before=steady(walk_to_summary))


def test_done_80x24(snap_compare, app_factory):
    async def done(pilot):
        await walk_to_summary(pilot)
        config, _ = pilot.app.config()
        await pilot.app.push_screen(DoneScreen(config, {"/var/lib/libvirt/images": "ABCD-EFGH-IJKL-MNOP-QRST-UVWX"
                                                                                   "-YZ23-4567"}))
        await pilot.pause()
    assert snap_compare(app_factory(), terminal_size=SMALL, run_before=done)


def test_stopped_80x24(snap_compare, app_factory):
    async def stopped(pilot):
        await pilot.pause()
        pilot.app.log_path = "/tmp/phyllome-install.log"
        await pilot.app.push_screen(FailureScreen("partition", "interrupted (quit); the disk /dev/loop7 is not "
                                                  "bootable: run the install again", stopped=True, exit_code=130))
        await pilot.pause()
    assert snap_compare(app_factory(), terminal_size=SMALL, run_before=stopped)


def test_quit_while_writing_80x24(snap_compare, app_factory):
    async def writing(pilot):
        await pilot.pause()
        pilot.app.busy = True  # as the progress screen sets it; nothing runs
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert snap_compare(app_factory(), terminal_size=SMALL, run_before=writing)
