from __future__ import annotations

from pathlib import Path

import pytest

from phyllome_installer.core.runner import RecordingRunner
from phyllome_installer.frontend import Installer
from phyllome_installer.sandbox import Sandbox
from screens.app import create_installer_app

MACHINE = Path(__file__).resolve().parents[1] / "data" / "machines" / "tui-laptop"
GOOD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMP me@laptop"


@pytest.fixture
def app_factory():
    """An installer app on the sandbox whose machine is a saved tree: nothing on this machine is read or changed
    until an install runs (then the runner given is used)."""
    def make(runner=None, base=Path("/var/tmp/phyllome-tui-test"), answers=None):
        installer = Installer(runner or RecordingRunner(), sandbox=Sandbox(base), proc=MACHINE / "proc",
                              sys_root=MACHINE / "sys")
        return create_installer_app(installer, answers=answers)
    return make


async def to_disk(pilot):
    """Welcome -> disk, with the disk list probed (it is read in a worker)."""
    await pilot.pause()
    await pilot.press("tab", "enter")
    await pilot.pause(0.5)


async def to_encryption(pilot):
    await to_disk(pilot)
    await pilot.press("enter")
    await pilot.pause()


async def to_host(pilot, passphrase="correct horse battery"):
    await to_encryption(pilot)
    await pilot.press(*passphrase, "enter", *passphrase, "enter")
    await pilot.pause()


async def walk_to_summary(pilot, *, passphrase="correct horse battery", password="a long password"):
    """Type through the first four steps with the keyboard only, as a user on a console would."""
    await to_host(pilot, passphrase)
    await pilot.press("enter")                       # hostname: keep "phyllome"
    await pilot.press("end", *["backspace"] * 3, *"Europe/Paris", "enter")
    await pilot.press(*"admin", "enter", *password, "enter", *password, "enter", "enter")
    await pilot.pause(0.3)


@pytest.fixture(autouse=True)
def no_console_theme(monkeypatch):
    """The apps' own theme in every test unless one asks for the console's (tests/tui/test_console.py): the TERM of
    the shell running pytest must not change a picture."""
    monkeypatch.setenv("PHYLLOME_CONSOLE", "0")


@pytest.fixture
def flow(tmp_path):
    """The first boot on a saved machine tree whose libvirt is the saved capabilities (test_firstboot_snapshots)."""
    from tests.tui import firstboot_helpers
    from tests.tui.test_firstboot_snapshots import SavedHostSession

    def make(machine: str = "this-ci-vm", **kwargs):
        made = firstboot_helpers.make_app(tmp_path, machine=machine, **kwargs)
        made.session = SavedHostSession(made.session.runner, root=made.session.root, uri="qemu:///system",
                                        store=made.session.store)
        return made
    return make
