"""Pilot tests of the first-boot screens that need no libvirt: unlock, checks (with the kernel-argument fix) and
graphics. The VM, review, create and done screens run against qemu:///embed in tests/libvirt/."""

from __future__ import annotations

import json

from textual.widgets import Button, Input, RadioSet

from phyllome_installer.core.runner import RecordingRunner
from screens.firstboot.checks import ChecksScreen
from screens.firstboot.gpu import GpuScreen
from screens.firstboot.unlock import UnlockScreen
from screens.firstboot.vm import VmScreen
from screens.firstboot.widgets import ConfirmQuit
from tests.tui.firstboot_helpers import ScriptedUnlocker, make_app

SIZE = (80, 25)


def text(app, selector: str) -> str:
    """What a widget shows, with the Statics inside it (a check is a row of two: its state, its text)."""
    widget = app.screen.query_one(selector)
    return " ".join([str(widget.render()), *(str(s.render()) for s in widget.query("Static"))])


async def test_a_locked_store_opens_on_unlock_and_the_right_passphrase_goes_on(tmp_path):
    unlocker = ScriptedUnlocker()
    app = make_app(tmp_path, unlocker=unlocker)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, UnlockScreen)
        assert "LOCKED" in text(app, ".title")
        await pilot.press(*"wrong", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "Wrong passphrase or recovery code. 2 tries left." in text(app, "#secret-error")
        assert app.screen.query_one("#secret", Input).value == ""  # a wrong secret is not kept on screen
        await pilot.press(*"right passphrase", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ChecksScreen)
        await pilot.press("escape")  # the unlock is done: Esc does not go back to it
        await pilot.pause()
        assert isinstance(app.screen, ChecksScreen)
        assert unlocker.tried == ["wrong", "right passphrase"]
        assert app.result.steps[0].detail == "the VM store is unlocked (try 2)"


async def test_three_wrong_tries_say_so_and_go_on_without_the_store(tmp_path):
    app = make_app(tmp_path, unlocker=ScriptedUnlocker())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for attempt in ("a", "b", "c"):
            await pilot.press(*attempt, "enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert "3 wrong tries" in text(app, "#secret-error") and "stays locked" in text(app, "#secret-error")
        assert app.screen.query_one("#secret", Input).disabled
        assert "Continue without the VM store" in str(app.screen.query_one("#skip", Button).label)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ChecksScreen)


async def test_skip_is_one_key_away_and_says_what_it_means(tmp_path):
    app = make_app(tmp_path, unlocker=ScriptedUnlocker())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")  # empty: asked for the secret or Skip, nothing tried
        assert "or choose Skip" in text(app, "#secret-error")
        app.screen.query_one("#skip", Button).press()
        await pilot.pause()
        assert "Skipped by the user" in text(app, "#secret-error")


async def test_checks_show_states_as_words_and_apply_the_kernel_arguments(tmp_path):
    runner = RecordingRunner()
    runner.respond(["ostree", "admin", "status"], stdout="* phyllome 0123abcd.0\n")
    app = make_app(tmp_path, runner=runner)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ChecksScreen)
        shown = text(app, "#checks")
        assert "WARN The kernel has turned the IOMMU on" in shown and "fix: add intel_iommu=on" in shown
        fix = app.screen.query_one("#fix", Button)
        assert fix.display and "intel_iommu=on iommu=pt" in str(fix.label)
        fix.press()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert ("ostree", "admin", "deploy", "--retain", "--karg-proc-cmdline", "--karg-append=intel_iommu=on",
                "--karg-append=iommu=pt", "0123abcd") in runner.argvs
        assert "REBOOT PENDING: intel_iommu=on iommu=pt take effect" in text(app, "#reboot")
        assert not fix.display
        await pilot.press("r")  # re-check: read again, the pending reboot still shown
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "REBOOT PENDING" in text(app, "#reboot")


async def test_graphics_ranks_for_the_chosen_family_and_keeps_the_choice(tmp_path):
    app = make_app(tmp_path, machine="dgpu-shares-group-with-usb")
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.screen.query_one("#next", Button).press()
        await pilot.pause()
        assert isinstance(app.screen, GpuScreen)
        shown = text(app, "#gpus")
        assert "NOT ISOLATED: shares its IOMMU group with" in shown
        windows = shown
        app.screen.query_one("#family", RadioSet).query("RadioButton")[1].value = True  # Linux
        await pilot.pause()
        assert text(app, "#gpus") != windows  # ranked again for Linux guests
        app.screen.query_one("#strategy", RadioSet).query("RadioButton")[1].value = True  # virtio-gpu-2d
        app.screen.query_one("#next", Button).press()
        await pilot.pause()
        assert isinstance(app.screen, VmScreen)
        assert app.choices["gpu"] == "virtio-gpu-2d" and app.choices["family"] == "linux"


async def test_quit_defaults_to_staying(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmQuit)
        words = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "Quit the first boot?" in words and "opens again at the next start" in words
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmQuit) and app.is_running
        await pilot.press("ctrl+c", "y")
        await pilot.pause()
    assert app.return_code == 0
    root = app.session.root
    saved = json.loads((root / "var/lib/phyllome/firstboot.json").read_text())
    assert not saved["ok"] and saved["failed_step"] == "quit"
    assert (root / "etc/phyllome/firstboot").exists()  # it opens again at the next start


async def test_quitting_while_busy_exits_non_zero(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.busy = True
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert "the VM is being created" in " ".join(str(w.render()) for w in app.screen.query("Static"))
        await pilot.press("y")
        await pilot.pause()
    assert app.return_code == 130 and app.stop.requested


async def to_vm_screen(app, pilot) -> None:
    """From the checks (once they are read) past graphics to the primary VM's screen, with Next twice."""
    await app.workers.wait_for_complete()
    for _ in range(2):
        app.screen.query_one("#next", Button).press()
        await pilot.pause()


async def test_a_partial_firstboot_prefills_the_vm_screen(tmp_path):
    app = make_app(tmp_path, firstboot={"vm": {"name": "work", "memory": "8GiB"}, "unattended": False})
    async with app.run_test(size=SIZE) as pilot:
        await to_vm_screen(app, pilot)
        values = {k: app.screen.query_one(f"#{k}", Input).value for k in ("name", "memory", "cpus")}
        assert values == {"name": "work", "memory": "8GiB", "cpus": ""}
        assert app.screen.query_one("#os").is_blank()  # only the OS is asked


async def test_every_vm_field_error_is_shown_at_once_next_to_its_field(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await to_vm_screen(app, pilot)
        screen = app.screen
        screen.query_one("#memory", Input).value = "lots"
        screen.query_one("#cpus", Input).value = "0"
        screen.query_one("#next", Button).press()
        await pilot.pause()
        assert "not a size" in text(app, "#memory-error")
        assert "a whole number of CPUs" in text(app, "#cpus-error")
        assert "choose an ISO" in text(app, "#os-error")
        assert isinstance(app.screen, VmScreen)


async def test_checks_that_fail_to_run_are_said_and_r_runs_them_again(tmp_path):
    """The checks' worker had no error path: an exception in it ended the app with a traceback on the console.
    The failure is stood for by a machine tree whose reading raises once (a bug in a check, or a file that changes
    under it); the next try reads it whole."""
    app = make_app(tmp_path)
    real, calls = app.session.checks, []

    def checks_failing_once():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a check broke")
        return real()

    app.session.checks = checks_failing_once
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ChecksScreen)
        assert "The checks could not run (RuntimeError: a check broke). Press R" in text(app, "#checks")
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "PASS" in text(app, "#checks") and "could not run" not in text(app, "#checks")
        assert app.is_running


async def test_what_a_worker_posts_after_its_screen_went_is_dropped(tmp_path):
    """Back from the VM screen while it plans: the plan's outcome goes nowhere (no error, no screen change)."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await to_vm_screen(app, pilot)
        screen = app.screen
        assert isinstance(screen, VmScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, VmScreen)
        assert screen.post_message(VmScreen.Planned(None, {"general": "late"})) is False
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, VmScreen)


def test_a_long_iso_path_shows_its_file_name_first():
    from screens.firstboot.vm import ISO_WIDTH, iso_label

    short = "/srv/isos/Win11.iso"
    assert iso_label(short) == short
    deep = "/var/lib/libvirt/images/downloads/2026/december/installers/Win11_24H2_x64.iso"
    shown = iso_label(deep)
    assert len(shown) <= ISO_WIDTH and shown.startswith("Win11_24H2_x64.iso in ...")
    assert shown.endswith("/installers")
    long_name = "/var/lib/libvirt/images/Win11_24H2_EnglishInternational_x64.iso"
    assert iso_label(long_name) == "Win11_24H2_EnglishInternational_x64.iso"  # the name whole, no folder room
    huge = "/a/" + "x" * 90 + ".iso"
    assert len(iso_label(huge)) == ISO_WIDTH and iso_label(huge).endswith("...")
