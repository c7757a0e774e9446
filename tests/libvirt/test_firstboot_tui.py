"""The first-boot screens through the whole flow against a real libvirt (qemu:///embed) with the real dry run:
checks -> graphics -> VM -> review (domain XML) -> create -> done; and a failure that keeps the marker and retries.
Snapshots are in tests/tui/test_firstboot_snapshots.py (fixed host facts, so they do not change with the host)."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Button, Input

from phyllome_installer.core.runner import SubprocessRunner
from screens.firstboot.done import DoneScreen
from screens.firstboot.failure import FailureScreen
from screens.firstboot.review import ReviewScreen
from screens.firstboot.vm import VmScreen
from screens.firstboot.widgets import TextViewer
from tests.libvirt import embed
from tests.tui import firstboot_helpers

pytestmark = pytest.mark.libvirt
SIZE = (80, 25)


def make_app(tmp_path, **kwargs):
    """Commands (qemu-img for the disk) run for real here, on this machine's saved tree (its GPUs are real)."""
    return firstboot_helpers.make_app(tmp_path, runner=SubprocessRunner(), machine="this-ci-vm", **kwargs)


@pytest.fixture
def uri(embedded):
    uri, conn, root = embedded
    yield uri
    embed.clean(conn, root)


async def to_vm(pilot):
    app = pilot.app
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.click("#next")  # checks
    await pilot.pause()
    await pilot.click("#next")  # graphics
    await pilot.pause()
    assert isinstance(app.screen, VmScreen)


async def to_review(pilot, os_id="fedora37"):
    await to_vm(pilot)
    app = pilot.app
    app.screen.query_one("#os").value = os_id
    app.screen.query_one("#memory", Input).value = "1GiB"
    app.screen.query_one("#disk_size", Input).value = "12GiB"
    await pilot.click("#next")
    await app.workers.wait_for_complete()
    await pilot.pause()
    assert isinstance(app.screen, ReviewScreen), app.screen


async def test_the_whole_flow_creates_the_vm_and_ends_the_first_boot(tmp_path, uri, embedded):
    conn = embedded[1]
    app = make_app(tmp_path, uri=uri, firstboot={"vm": {"start": False}})
    root = app.session.root
    async with app.run_test(size=SIZE) as pilot:
        await to_review(pilot)
        review = str(app.screen.query_one("#review").render())
        assert "1 GiB" in review and "from: user" in review and "fedora37" in review
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, TextViewer) and "<domain type=" in app.screen.text
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, DoneScreen), getattr(app.screen, "error", "")
        done = str(app.screen.query_one("#done").render())
        assert "[ok] dry run passed" in done and "[ok] defined, autostart on" in done
        assert f"virsh -c '{uri}' start desktop" in done and "Autostart is ON" in done
        await pilot.press("enter")
    assert app.return_code == 0
    dom = conn.lookupByName("desktop")
    assert dom.autostart() == 1 and not dom.isActive()
    assert not (root / "etc/phyllome/firstboot").exists()
    saved = json.loads((root / "var/lib/phyllome/firstboot.json").read_text())
    assert saved["ok"] and saved["mode"] == "screens" and saved["vm"]["name"] == "desktop"
    assert [s["name"] for s in saved["steps"]] == ["checks", "graphics", "vm"]


async def test_a_failed_create_keeps_the_marker_shows_the_error_and_retries(tmp_path, uri, embedded):
    app = make_app(tmp_path, uri=uri, firstboot={"vm": {"start": False}})
    root = app.session.root
    async with app.run_test(size=SIZE) as pilot:
        await to_review(pilot)
        (tmp_path / "images").rmdir()  # the VM store went away between review and create
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, FailureScreen)
        assert "FAILED: Create the VM" in str(app.screen.query_one(".title").render())
        assert str(tmp_path / "images") in app.screen.error
        assert (root / "etc/phyllome/firstboot").exists()
        saved = json.loads((root / "var/lib/phyllome/firstboot.json").read_text())
        assert not saved["ok"] and saved["failed_step"] == "vm"
        (tmp_path / "images").mkdir()
        await pilot.press("enter")  # Retry
        await pilot.pause()
        assert isinstance(app.screen, ReviewScreen)
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, DoneScreen)
    assert not (root / "etc/phyllome/firstboot").exists()
    assert json.loads((root / "var/lib/phyllome/firstboot.json").read_text())["ok"]


async def test_an_engine_error_is_shown_next_to_its_field(tmp_path, uri):
    app = make_app(tmp_path, uri=uri)
    async with app.run_test(size=SIZE) as pilot:
        await to_vm(pilot)
        app.screen.query_one("#os").value = "fedora37"
        app.screen.query_one("#memory", Input).value = "16MiB"
        await pilot.click("#next")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, VmScreen)
        assert "minimum" in str(app.screen.query_one("#memory-error").render())
        assert not app.screen.query_one("#next", Button).disabled
