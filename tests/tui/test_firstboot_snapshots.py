"""Every first-boot screen at 80x25, compared with its saved SVG (`--snapshot-update` to accept).

The host's libvirt facts come from the saved capabilities in tests/data/libvirt and VM creation answers with
fixed steps, so the pictures do not change with the machine (the real create: tests/libvirt/test_firstboot_tui.py).
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from firstboot import host as hostfacts
from firstboot.libvirt_backend import Created
from firstboot.primary import build
from firstboot.session import Session
from tests.tui import firstboot_helpers
from tests.tui.firstboot_helpers import ScriptedUnlocker

SIZE = (80, 25)
DATA = Path(__file__).resolve().parents[1] / "data"
BASE = Path("/var/tmp/phyllome-firstboot-snapshots")
GiB = 1 << 30


class SavedHostSession(Session):
    """A session whose libvirt is the saved capabilities XML; create reports the engine's steps."""

    fail_with = ""

    def plan(self, request, os_id, *, detected_from=None):
        domcaps = (DATA / "libvirt/domcaps-qemu-q35.xml").read_text()
        facts = hostfacts.parse((DATA / "libvirt/capabilities.xml").read_text(), domcaps, libvirt_version=9000000,
                                domain_type=ET.fromstring(domcaps).findtext("domain"))
        facts = facts.model_copy(update={"memory": 16 * GiB, "cpus": 8, "threads_per_core": 2})
        return build(request, os_id, catalogue=self.catalogue, host=facts, machine=self.machine,
                     detected_from=detected_from)

    def create(self, planned, *, dry_run, start, on_step=None):
        for step in ("creating the disk", "dry run: define, start paused, destroy, undefine"):
            if on_step:
                on_step(step)
        if self.fail_with:
            from phyllome_installer.core.errors import InstallFailure

            raise InstallFailure(self.fail_with)
        return Created(planned.spec.name, "", [f"disk {planned.spec.disk} (created)", "dry run passed in 3.1 s",
                                               "defined, autostart on"])


@pytest.fixture
def app():
    shutil.rmtree(BASE, ignore_errors=True)
    BASE.mkdir(parents=True)

    def make(unlocker=None, fail_with="", **kwargs):
        made = firstboot_helpers.make_app(BASE, machine="this-ci-vm", unlocker=unlocker, **kwargs)
        session = SavedHostSession(made.session.runner, root=made.session.root, uri="qemu:///system",
                                   store=made.session.store)
        session.fail_with = fail_with
        made.session = session
        return made
    yield make
    shutil.rmtree(BASE, ignore_errors=True)


async def settle(pilot):
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def to_gpu(pilot):
    await settle(pilot)
    await pilot.click("#next")
    await pilot.pause()


async def to_vm(pilot):
    await to_gpu(pilot)
    await pilot.click("#next")
    await pilot.pause()
    pilot.app.screen.query_one("#os").value = "win11"


async def to_review(pilot):
    await to_vm(pilot)
    await pilot.click("#next")
    await settle(pilot)


async def to_end(pilot):
    await to_review(pilot)
    await pilot.press("enter")
    await settle(pilot)


def test_unlock(snap_compare, app):
    async def wrong(pilot):
        await pilot.press(*"nope", "enter")
        await settle(pilot)
        pilot.app.screen.query_one("#secret").cursor_blink = False  # the picture must not depend on the blink
        await pilot.pause()
    assert snap_compare(app(unlocker=ScriptedUnlocker()), terminal_size=SIZE, run_before=wrong)


def test_checks(snap_compare, app):
    assert snap_compare(app(), terminal_size=SIZE, run_before=settle)


def test_graphics(snap_compare, app):
    assert snap_compare(app(), terminal_size=SIZE, run_before=to_gpu)


def test_vm(snap_compare, app):
    assert snap_compare(app(), terminal_size=SIZE, run_before=to_vm)


def test_review(snap_compare, app):
    assert snap_compare(app(), terminal_size=SIZE, run_before=to_review)


def test_done(snap_compare, app):
    assert snap_compare(app(), terminal_size=SIZE, run_before=to_end)


def test_failure(snap_compare, app):
    assert snap_compare(app(fail_with="the VM does not start: Cannot access storage file"), terminal_size=SIZE,
                        run_before=to_end)


def test_quit(snap_compare, app):
    async def quit_(pilot):
        await settle(pilot)
        await pilot.press("ctrl+q")
    assert snap_compare(app(), terminal_size=SIZE, run_before=quit_)


async def test_every_screen_fits_80x24_with_its_buttons_reachable(app):
    """At 80x24 every button of every screen is on screen, and every field keeps its label."""
    from textual.widgets import Button, Label

    seen = []

    async def check(pilot, name):
        screen = pilot.app.screen
        buttons = [b for b in screen.query(Button) if b.display]
        assert buttons, name
        for button in buttons:
            assert button.region.bottom <= 24 and button.region.right <= 80 and button.region.height, (name, button)
        for label in screen.query(Label):
            assert str(label.render()).strip(), name
        seen.append(name)

    flow = app(unlocker=ScriptedUnlocker())
    async with flow.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await check(pilot, "unlock")
        await pilot.press(*"right passphrase", "enter")
        await settle(pilot)
        await check(pilot, "checks")
        await pilot.click("#next")
        await pilot.pause()
        await check(pilot, "graphics")
        await pilot.click("#next")
        await pilot.pause()
        await check(pilot, "vm")
        pilot.app.screen.query_one("#os").value = "win11"
        await pilot.click("#next")
        await settle(pilot)
        await check(pilot, "review")
        await pilot.press("enter")
        await settle(pilot)
        await check(pilot, "done")
    assert seen == ["unlock", "checks", "graphics", "vm", "review", "done"]


async def test_a_firstboot_vm_that_names_the_os_asks_nothing_more_and_esc_comes_back(app):
    flow = app(firstboot={"vm": {"name": "work", "os": "win11", "memory": "8GiB"}})
    async with flow.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.click("#next")  # checks
        await settle(pilot)
        assert pilot.app.screen.query_one("#family").pressed_button.name == "windows"  # from the OS
        await pilot.click("#next")  # graphics
        await settle(pilot)
        await settle(pilot)
        review = pilot.app.screen
        assert type(review).__name__ == "ReviewScreen"
        assert "8 GiB" in str(review.query_one("#review").render())
        await pilot.press("escape")
        await pilot.pause()
        values = {k: str(pilot.app.screen.query_one(f"#{k}").value) for k in ("os", "name", "memory")}
        assert values == {"os": "win11", "name": "work", "memory": "8GiB"}
