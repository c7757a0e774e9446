"""The first-boot sandbox's VM store (firstboot/sandbox.py) on real loop devices: a sandbox killed with SIGKILL
leaves its store mounted and its loop device attached, and the next run releases both; a store image attached by
someone else is refused and never detached. The walk from unlock to Done is in
tests/libvirt/test_firstboot_sandbox_walk.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from firstboot.sandbox import STORE_FS, STORE_IMAGE, sandbox_session
from phyllome_installer.core.errors import UserError
from phyllome_installer.core.runner import SubprocessRunner
from phyllome_installer.leftovers import loop_devices_of
from phyllome_installer.sandbox import attached_image
from tests.libvirt import embed

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def base(monkeypatch):
    """A short sandbox directory (libvirt's sockets go below it); this process's environment restored after."""
    monkeypatch.setattr(os, "environ", dict(os.environ))
    with embed.short_root("fbsb-") as directory:
        yield directory
        assert not os.path.ismount(directory / STORE_FS)


def released(base: Path) -> bool:
    mounts = Path("/proc/self/mountinfo").read_text()
    return not loop_devices_of(base / STORE_IMAGE) and str(base / STORE_FS) not in mounts


def test_a_killed_sandbox_is_released_by_the_next_run(base):
    script = ("import sys, time; from pathlib import Path; from firstboot.sandbox import sandbox_session; "
              "from phyllome_installer.sandbox import attached_image; "
              "from phyllome_installer.core.runner import SubprocessRunner; "
              "s = sandbox_session(SubprocessRunner(), Path(sys.argv[1]), attach=attached_image); "
              "print('ready', flush=True); time.sleep(600)")
    child = subprocess.Popen([sys.executable, "-c", script, str(base)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert os.path.ismount(base / STORE_FS) and loop_devices_of(base / STORE_IMAGE)  # what it left
    left = loop_devices_of(base / STORE_IMAGE)
    session = sandbox_session(SubprocessRunner(), base, attach=attached_image)
    try:
        now = loop_devices_of(base / STORE_IMAGE)
        assert len(now) == 1 and len(left) == 1  # the killed run's device released, the new run's attached
        assert Path("/proc/self/mountinfo").read_text().count(f" {base / STORE_FS} ") == 1
        assert session.passphrase and not any(session.store.iterdir())  # a new, empty store
    finally:
        session.close()
    assert released(base)


def test_the_sandbox_refuses_an_image_someone_else_attached(base):
    (base / STORE_IMAGE).write_bytes(b"")
    os.truncate(base / STORE_IMAGE, 64 << 20)
    device = subprocess.run(["losetup", "--find", "--show", str(base / STORE_IMAGE)], capture_output=True,
                            text=True, check=True).stdout.strip()
    try:
        with pytest.raises(UserError, match="in use"):
            sandbox_session(SubprocessRunner(), base, attach=attached_image)
        assert loop_devices_of(base / STORE_IMAGE) == [Path(device).name]  # never detached: not ours
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
