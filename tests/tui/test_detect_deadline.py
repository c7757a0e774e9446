"""Workers with deadlines (issue 21): ISO detection runs libosinfo in a child process that is killed at its deadline
or when the VM screen that asked is left, so a hang in create_from_location can neither freeze Quit nor outlive
its screen. The detection itself is real (xorriso ISOs, osinfo-db); the hang is stood in by a child that sleeps."""

from __future__ import annotations

import subprocess
import threading

import pytest

from firstboot.osinfo import detect_in_child
from phyllome_installer.core.errors import UserError


def make_iso(tmp_path, volume: str):
    tree = tmp_path / "tree"
    tree.mkdir(exist_ok=True)
    (tree / "README").write_text("stand-in")
    iso = tmp_path / f"{volume}.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", volume, "-o", str(iso), str(tree)], check=True)
    return iso


def running(command: str) -> list[str]:
    return subprocess.run(["pgrep", "-x", "-f", command], capture_output=True, text=True, check=False).stdout.split()


def test_detection_in_a_child_finds_the_os_and_words_its_errors_without_cli_flags(tmp_path):
    assert detect_in_child(make_iso(tmp_path, "Fedora-WS-Live-37-1-7")) == "fedora37"
    with pytest.raises(UserError) as unknown:
        detect_in_child(make_iso(tmp_path, "NOT_AN_OS"))
    assert "does not recognise" in str(unknown.value) and "--" not in str(unknown.value)
    noise = tmp_path / "noise.iso"
    noise.write_bytes(bytes(range(256)) * 4096)  # random-looking bytes named .iso
    with pytest.raises(UserError, match="cannot read it as an installation ISO"):
        detect_in_child(noise)


def test_a_detection_that_never_answers_is_killed_at_its_deadline_stand_in_sleeping_child(tmp_path):
    with pytest.raises(UserError, match="could not be detected within"):
        detect_in_child(tmp_path / "x.iso", deadline=0.5, argv=["sleep", "600"])
    assert running("sleep 600") == []  # killed and reaped, not left behind


def test_leaving_the_screen_cancels_a_detection_in_progress_stand_in_sleeping_child(tmp_path):
    cancel = threading.Event()
    outcome = []

    def run():
        try:
            detect_in_child(tmp_path / "x.iso", deadline=600, cancelled=cancel.is_set, argv=["sleep", "601"])
        except UserError as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=run)
    worker.start()
    cancel.set()
    worker.join(60)
    assert not worker.is_alive() and outcome == ["x.iso: detection cancelled"]


async def test_back_from_the_vm_screen_ends_its_detection_stand_in_sleeping_child(tmp_path):
    from tests.tui import firstboot_helpers
    from tests.tui.test_firstboot_snapshots import SavedHostSession

    class Hanging(SavedHostSession):
        def detect(self, iso, cancelled=lambda: False):
            return detect_in_child(iso, cancelled=cancelled, argv=["sleep", "602"])

    app = firstboot_helpers.make_app(tmp_path, machine="this-ci-vm")
    app.session = Hanging(app.session.runner, root=app.session.root, uri="qemu:///system", store=app.session.store)
    async with app.run_test(size=(80, 25)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        for _ in ("checks", "graphics"):
            await pilot.click("#next")
            await pilot.pause()
        vm = app.screen
        assert type(vm).__name__ == "VmScreen"
        vm._detect(str(tmp_path / "hangs.iso"))
        for _ in range(100):  # the child is started by the worker thread
            await pilot.pause(0.05)
            if running("sleep 602"):
                break
        assert running("sleep 602")
        await pilot.press("escape")  # Back to the graphics: the screen goes, its detection with it
        await pilot.pause()
        for _ in range(100):  # the worker sees the cancel at its next poll of the child
            await pilot.pause(0.05)
            if not running("sleep 602"):
                break
        assert type(app.screen).__name__ == "GpuScreen" and running("sleep 602") == []
