"""Keys typed right after Tab or Enter land in the field focused by then (issue 21). Pilot's press() waits for
each key to be handled, so it cannot show this; these walks post the keys all at once, as a terminal delivers a
fast typist's keys (or type-ahead, or a paste of keystrokes). Reproduced first in tmux: on the first boot's VM
screen Tab Tab "work" typed nothing and "work" Tab "8GiB" gave the name "work8GiB"."""

from __future__ import annotations

from textual import events

from screens.host_user import HostUserScreen
from tests.tui.conftest import to_host
from tests.tui.firstboot_helpers import make_app

SIZE = (80, 25)
CHARACTERS = {"tab": "\t", "enter": "\r", "shift+tab": None, "backspace": "\x7f", "ctrl+a": "\x01", "ctrl+k": "\x0b"}


def burst(app, *keys: str) -> None:
    """All the keys into the App's queue at once, before any is handled, as the terminal driver posts them."""
    for key in keys:
        app.post_message(events.Key(key, CHARACTERS.get(key, key)))


async def settle(pilot):
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_first_boot_fields_typed_at_full_speed_after_tab_and_enter(tmp_path):
    app = make_app(tmp_path, machine="this-ci-vm")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for _ in ("checks", "graphics"):
            await pilot.click("#next")
            await settle(pilot)
        assert app.focused is app.screen.query_one("#iso")
        burst(app, "tab", "tab", *"work", "tab", *"8GiB", "tab", "3", "enter", *"128GiB", "shift+tab", "backspace",
              "4")
        await pilot.pause(0.2)
        await settle(pilot)
        values = {k: app.screen.query_one(f"#{k}").value for k in ("name", "memory", "cpus", "disk_size")}
        assert values == {"name": "work", "memory": "8GiB", "cpus": "4", "disk_size": "128GiB"}


async def test_installer_fields_typed_at_full_speed_after_enter(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await to_host(pilot)
        assert isinstance(app.screen, HostUserScreen) and app.focused is app.screen.query_one("#hostname")
        burst(app, "enter", "ctrl+a", "ctrl+k", *"Europe/Paris", "enter", *"admin", "enter", *"a long password",
              "tab", *"a long password")
        await pilot.pause(0.2)
        await settle(pilot)
        values = {k: app.screen.query_one(f"#{k}").value for k in ("hostname", "timezone", "user", "pw1", "pw2")}
        assert values == {"hostname": "phyllome", "timezone": "Europe/Paris", "user": "admin",
                          "pw1": "a long password", "pw2": "a long password"}
