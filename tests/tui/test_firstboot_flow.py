"""The first boot as a flow a person cannot get stuck in (issue 21), as walks a person would take at the console."""

from __future__ import annotations

from textual.widgets import Button, Input

from screens.firstboot.checks import ChecksScreen
from screens.firstboot.review import ReviewScreen
from screens.firstboot.unlock import UnlockScreen
from tests.tui.firstboot_helpers import ScriptedUnlocker

SIZE = (80, 25)


async def settle(pilot):
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def wrong_three_times(pilot):
    await settle(pilot)
    for attempt in ("a", "b", "c"):
        await pilot.press(*attempt, "enter")
        await settle(pilot)


async def test_after_three_wrong_tries_the_unlock_can_be_tried_again_at_once(flow):
    unlocker = ScriptedUnlocker()
    app = flow(unlocker=unlocker)
    async with app.run_test(size=SIZE) as pilot:
        await wrong_three_times(pilot)
        again = app.screen.query_one("#again", Button)
        assert again.display and "Try again" in str(again.label)
        again.press()
        await pilot.pause()
        field = app.screen.query_one("#secret", Input)
        assert not field.disabled and app.focused is field
        await pilot.press(*"right passphrase", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ChecksScreen)
        assert unlocker.state() == "unlocked"


async def test_a_locked_store_is_offered_for_unlock_on_the_review_and_create_waits_for_it(flow):
    """The dead end: three wrong tries, Continue without the store, checks, graphics, VM, review. The review says
    the store is locked, does not offer Create (it cannot work), and its Unlock leads back to the review."""
    unlocker = ScriptedUnlocker()
    app = flow(unlocker=unlocker)
    async with app.run_test(size=SIZE) as pilot:
        await wrong_three_times(pilot)
        await pilot.press("enter")  # Continue without the VM store
        await settle(pilot)
        for _ in ("checks", "graphics"):
            await pilot.click("#next")
            await settle(pilot)
        app.screen.query_one("#os").value = "win11"
        await pilot.click("#next")
        await settle(pilot)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        assert "LOCKED" in str(review.query_one("#locked").render())
        assert review.query_one("#create", Button).disabled
        unlock = review.query_one("#unlock", Button)
        assert unlock.display
        unlock.press()
        await pilot.pause()
        assert isinstance(app.screen, UnlockScreen)
        await pilot.press(*"right passphrase", "enter")
        await settle(pilot)
        assert app.screen is review
        assert not review.query_one("#create", Button).disabled and not review.query_one("#unlock").display
        assert not review.query_one("#locked").display
        await pilot.press("enter")  # Create, focused once the store is open
        await settle(pilot)
        assert type(app.screen).__name__ == "DoneScreen"


async def to_vm_screen(pilot):
    await settle(pilot)
    for _ in ("checks", "graphics"):
        await pilot.click("#next")
        await settle(pilot)
    assert type(pilot.app.screen).__name__ == "VmScreen"


def typed(app) -> dict[str, str]:
    return {"os": str(app.screen.query_one("#os").value),
            **{k: app.screen.query_one(f"#{k}", Input).value for k in ("name", "memory", "cpus", "disk_size")}}


async def test_values_typed_on_the_vm_screen_survive_back_and_forward_and_automatic_stays_automatic(flow):
    app = flow()
    async with app.run_test(size=SIZE) as pilot:
        await to_vm_screen(pilot)
        screen = app.screen
        for key, value in (("os", "win11"), ("name", "work"), ("cpus", "3")):
            screen.query_one(f"#{key}").value = value
        want = {"os": "win11", "name": "work", "memory": "", "cpus": "3", "disk_size": ""}
        await pilot.press("escape")  # back to the graphics, then forward again
        await pilot.pause()
        await pilot.click("#next")
        await settle(pilot)
        assert typed(app) == want
        await pilot.click("#next")  # plan -> review, then back: memory and disk are still "automatic"
        await settle(pilot)
        assert isinstance(app.screen, ReviewScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert typed(app) == want
        await pilot.press("escape")
        await pilot.pause()
        await pilot.click("#next")
        await settle(pilot)
        assert typed(app) == want


async def test_a_name_that_is_refused_says_what_is_allowed_in_words(flow):
    app = flow()
    async with app.run_test(size=SIZE) as pilot:
        await to_vm_screen(pilot)
        app.screen.query_one("#os").value = "win11"
        app.screen.query_one("#name", Input).value = "my desktop!"
        await pilot.click("#next")
        await settle(pilot)
        error = str(app.screen.query_one("#name-error").render())
        assert "letters" in error and "pattern" not in error and "^" not in error, error
        shown = " ".join(str(s.render()) for s in app.screen.query("Static"))
        assert "os-list" not in shown and "--" not in shown, shown


async def test_with_no_gpu_only_the_strategies_that_can_work_are_offered(flow):
    app = flow()  # this-ci-vm: no GPU, no render node
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.click("#next")
        await settle(pilot)
        assert type(app.screen).__name__ == "GpuScreen"
        offered = [c.name for c in app.screen.query_one("#strategy").query("Choice") if c.display]
        assert offered == ["auto", "virtio-gpu-2d"]


async def test_quit_after_done_says_it_is_done_and_keeps_the_result(flow):
    import json

    app = flow()
    async with app.run_test(size=SIZE) as pilot:
        await to_vm_screen(pilot)
        app.screen.query_one("#os").value = "win11"
        await pilot.click("#next")
        await settle(pilot)
        await pilot.press("enter")  # Create
        await settle(pilot)
        assert type(app.screen).__name__ == "DoneScreen"
        done = str(app.screen.query_one("#done").render())
        assert "virt-viewer" not in done  # a text-only host has no viewer: the address is for another computer
        await pilot.press("ctrl+q")
        await pilot.pause()
        said = " ".join(str(s.render()) for s in app.screen.query("Static"))
        assert "complete" in said and "opens again" not in said, said
        await pilot.press("y")
        await pilot.pause()
    saved = json.loads((app.session.root / "var/lib/phyllome/firstboot.json").read_text())
    assert saved.get("error") in (None, ""), saved
