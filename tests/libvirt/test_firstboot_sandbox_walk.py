"""``phyllome-firstboot --sandbox`` walked as a person would, from the unlock screen to Done: its VM store in a loop
image, encrypted and locked by the installer's fscrypt code and unlocked for real on the screen (one wrong try
first); the VM created with the real dry run (TCG) in the embedded libvirt (the tier's one per process: libvirt
opens a single embedded root per process, the sandbox's is set up the same way); afterwards the store locked,
unmounted and detached, and the secrets nowhere in the log or the sandbox's files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from textual.widgets import Input

from firstboot import state
from firstboot.sandbox import STORE_FS, STORE_IMAGE, sandbox_session
from phyllome_installer.answers import FirstBoot
from phyllome_installer.core.logs import setup_logging
from phyllome_installer.core.runner import SubprocessRunner
from phyllome_installer.core.secrets import REDACTOR
from phyllome_installer.core.sinks import ListSink
from phyllome_installer.leftovers import loop_devices_of
from phyllome_installer.sandbox import attached_image
from screens.firstboot.app import create_firstboot_app
from screens.firstboot.checks import ChecksScreen
from screens.firstboot.done import DoneScreen
from screens.firstboot.review import ReviewScreen
from screens.firstboot.unlock import UnlockScreen
from screens.firstboot.vm import VmScreen
from tests.libvirt import embed

pytestmark = [pytest.mark.libvirt, pytest.mark.root]
SIZE = (80, 25)


@pytest.fixture
def base(monkeypatch, embedded):
    """A short sandbox directory; this process's environment restored after; the tier's libvirt left empty."""
    monkeypatch.setattr(os, "environ", dict(os.environ))
    with embed.short_root("fbsb-") as directory:
        yield directory
        uri, conn, root = embedded
        embed.clean(conn, root)
        assert not os.path.ismount(directory / STORE_FS)


def released(base: Path) -> bool:
    mounts = Path("/proc/self/mountinfo").read_text()
    return not loop_devices_of(base / STORE_IMAGE) and str(base / STORE_FS) not in mounts


async def settle(pilot):
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_the_sandbox_walks_from_the_unlock_screen_to_done_with_the_real_store(base, tmp_path, embedded):
    log = setup_logging(tmp_path / "fb.log", ListSink(), redactor=REDACTOR)
    session = sandbox_session(SubprocessRunner(), base, attach=attached_image)
    secret, code = session.passphrase, session.recovery_code
    session.uri = embedded[0]  # the tier's embedded root: one per process
    try:
        assert os.path.ismount(base / STORE_FS) and loop_devices_of(base / STORE_IMAGE)
        app = create_firstboot_app(session, FirstBoot.model_validate({"vm": {"start": False}}),
                                   log_path=tmp_path / "fb.log")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert isinstance(app.screen, UnlockScreen)  # the store is locked, as at an installed host's boot
            await pilot.press(*"not-the-passphrase", "enter")  # a wrong try, refused by fscrypt itself
            await settle(pilot)
            assert isinstance(app.screen, UnlockScreen)
            assert "Wrong passphrase" in str(app.screen.query_one("#secret-error").render())
            app.screen.query_one("#secret", Input).value = ""
            await pilot.press(*secret, "enter")
            await settle(pilot)
            assert isinstance(app.screen, ChecksScreen), app.screen
            assert app.unlocker.state() == "unlocked"
            shown = " ".join(str(w.render()) for w in app.screen.query("Static"))
            # the store checked is the sandbox's own, in its loop image (not the saved tree's missing directory)
            assert "PASS The VM store is encrypted" in shown and "does not exist yet" not in shown, shown
            found = {check.id: check.found for check in app.screen.checks}
            assert found["store-encryption"] == f"fscrypt policy on {session.store}", found
            assert found["store-space"].endswith(f"free under {session.store}"), found
            await pilot.click("#next")  # checks
            await settle(pilot)
            await pilot.click("#next")  # graphics
            await settle(pilot)
            assert isinstance(app.screen, VmScreen), app.screen
            app.screen.query_one("#os").value = "fedora37"
            app.screen.query_one("#memory", Input).value = "1GiB"
            app.screen.query_one("#disk_size", Input).value = "12GiB"
            await pilot.click("#next")
            await settle(pilot)
            assert isinstance(app.screen, ReviewScreen), app.screen
            await pilot.press("enter")  # Create
            await settle(pilot)
            assert isinstance(app.screen, DoneScreen), getattr(app.screen, "error", app.screen)
            done = str(app.screen.query_one("#done").render())
            assert "[ok] dry run passed" in done and "[ok] defined, autostart on" in done
            await pilot.press("enter")
        assert app.return_code == 0
        disks = [p.name for p in session.store.iterdir()]
        assert any(name.startswith("desktop") for name in disks), disks  # the disk is in the encrypted store
    finally:
        session.close()
        log.close()
    assert released(base)  # locked with its filesystem unmounted, its loop device detached
    root = session.root
    assert not (root / state.MARKER).exists()
    saved = json.loads((root / state.RESULT).read_text())
    assert saved["ok"] and saved["vm"]["name"] == "desktop"
    text = (tmp_path / "fb.log").read_text()
    assert "fscrypt encrypt" in text and "fscrypt unlock" in text  # the commands are logged ...
    assert secret not in text and code not in text  # ... their secrets are not
    for path in base.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.name != STORE_IMAGE and path.stat().st_size < 1 << 24:
            data = path.read_bytes()
            assert secret.encode() not in data and code.encode() not in data, path


