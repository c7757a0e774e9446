"""The console theme (TERM=linux): every screen of both apps, walked with Pilot, draws only characters the VGA font
has (ASCII and CP437's upper half: box drawing, blocks, accented letters), and every Tab changes something a
person sees: in monochrome (a glyph, or reverse video, bold, underline: not only a colour) and on the Linux console's
colours as its driver makes them (where reverse video of dark grey text is dark grey text), with the focused field's
label the only one marked.

The same check on a real Linux console, through /dev/vcsu1 and /dev/vcsa1: tests/vt/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rich.color import ColorSystem
from rich.style import Style
from textual.widgets import Input

from phyllome_installer.core.runner import RecordingRunner
from phyllome_installer.frontend import Installer
from phyllome_installer.sandbox import Sandbox
from screens import console
from screens.app import create_installer_app
from screens.done import DoneScreen
from screens.failure import FailureScreen
from tests.tui.conftest import MACHINE, to_disk, to_encryption, to_host, walk_to_summary
from tests.tui.firstboot_helpers import ScriptedUnlocker
from tests.tui.test_firstboot_snapshots import SavedHostSession

SIZE = (80, 25)
#: What the VGA text mode's font (code page 437) draws: printable ASCII and the upper half of the code page.
VGA_FONT = frozenset(map(chr, range(0x20, 0x7F))) | frozenset(bytes(range(0x80, 0x100)).decode("cp437"))
CODE = "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567"


def _screen(app, cell) -> list[list[tuple]]:
    """The screen's rows, each a list of ``cell(char, style)`` (control segments left out)."""
    return [[cell(char, segment.style) for segment in strip if not segment.control for char in segment.text]
            for strip in app.screen._compositor.render_strips()]


def cells(app) -> list[list[tuple[str, bool, bool, bool]]]:
    """The screen as a monochrome console shows it: per cell its character and reverse, bold, underline."""
    return _screen(app, lambda char, style: (char, bool(style and style.reverse), bool(style and style.bold),
                                             bool(style and style.underline)))


def _colour(color, default: int) -> int:
    return default if color is None or color.is_default else color.downgrade(ColorSystem.STANDARD).number


def vt_colours(style: Style | None) -> tuple[int, int]:
    """(foreground, background) as the Linux console shows a Rich style on a VGA text console, as
    drivers/tty/vt/vt.c's vc_build_attr makes its attribute byte (background << 4 | foreground): underline and half
    bright replace the foreground (cyan, dark grey: the kernel's defaults), reverse swaps only the low three bits of
    each and leaves both intensity bits in place (so dark grey text reversed is still dark grey on black), bold then
    toggles the foreground's intensity. The background's top bit blinks; it is no colour."""
    style = style or Style()
    background = _colour(style.bgcolor, 0)
    attr = (background & 7 | (8 if background > 7 else 0)) << 4 | _colour(style.color, 7)
    if style.underline:
        attr = (attr & 0xF0) | 3
    elif style.dim:
        attr = (attr & 0xF0) | 8
    if style.reverse:
        attr = (attr & 0x88) | (((attr >> 4) | (attr << 4)) & 0x77)
    if style.bold:
        attr ^= 0x08
    return attr & 0x0F, (attr >> 4) & 0x07


def vt_cells(app) -> list[list[tuple[str, int | None, int]]]:
    """The screen as the Linux console shows it: per cell the character (a space where it has its background's
    colour), its colour (None for a space) and its background."""
    def cell(char: str, style) -> tuple[str, int | None, int]:
        fg, bg = vt_colours(style)
        return (" ", None, bg) if char == " " or fg == bg else (char, fg, bg)

    return _screen(app, cell)


def test_the_console_model_shows_reverse_video_as_the_linux_console_does():
    grey, white = Style(color="bright_black"), Style(color="white")
    assert vt_colours(grey + Style(reverse=True)) == vt_colours(grey) == (8, 0)  # the console's no-op
    assert vt_colours(white + Style(reverse=True)) == (0, 7)
    assert vt_colours(Style(color="bright_white", reverse=True, bold=True)) == (0, 7)
    assert vt_colours(None) == (7, 0) and vt_colours(Style(bgcolor="bright_blue")) == (7, 4)


def lost_reverse(app) -> list[str]:
    """Text drawn in reverse video that the Linux console shows as if it were not (dark grey, or a colour on its own
    colour): a focus or a field no one can see there."""
    lost = []
    for strip in app.screen._compositor.render_strips():
        for segment in strip:
            style = segment.style
            if style and style.reverse and not segment.control and segment.text.strip() and \
                    vt_colours(style) == vt_colours(style + Style(reverse=False)):
                lost.append(segment.text.strip())
    return lost


def marked_rows(app) -> list[str]:
    """Form rows whose label is marked (reverse video) and do not hold the focus, or hold it unmarked."""
    wrong = []
    for row in app.screen.query(".field, .field-row"):
        label = row.query(".field-label, Label").first()
        holds = app.focused is not None and row in app.focused.ancestors_with_self
        if bool(label.rich_style.reverse) != holds:
            wrong.append(f"{label.render()} ({'holds the focus, not marked' if holds else 'marked, no focus'})")
    return wrong


def text(rows) -> str:
    return "\n".join("".join(cell[0] for cell in row) for row in rows)


class Walk:
    """Checks every screen it is shown, and records which."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def check(self, pilot, name: str) -> None:
        await pilot.pause()
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()
        rows = cells(pilot.app)
        bad = sorted({cell[0] for row in rows for cell in row} - VGA_FONT)
        assert not bad, f"{name}: characters no console font has: {bad}\n{text(rows)}"
        assert not marked_rows(pilot.app), f"{name}: {marked_rows(pilot.app)}"
        assert not lost_reverse(pilot.app), f"{name}: reverse video the console cannot show: {lost_reverse(pilot.app)}"
        focusable = [w for w in pilot.app.screen.focus_chain if w.display]
        for _ in range(len(focusable) if len(focusable) > 1 else 0):
            before, on_vt, focused = cells(pilot.app), vt_cells(pilot.app), pilot.app.focused
            await pilot.press("tab")
            await pilot.pause()
            after = cells(pilot.app)
            moved = f"{name}: Tab from {focused} to {pilot.app.focused}"
            assert after != before, f"{moved} changes nothing visible in monochrome\n{text(after)}"
            assert vt_cells(pilot.app) != on_vt, f"{moved} changes nothing on the Linux console\n{text(after)}"
            assert not marked_rows(pilot.app), f"{moved}: {marked_rows(pilot.app)}"
            assert not lost_reverse(pilot.app), f"{moved}: reverse video the console cannot show: " \
                                                f"{lost_reverse(pilot.app)}"
        self.seen.append(name)


def installer_app():
    installer = Installer(RecordingRunner(), sandbox=Sandbox(Path("/var/tmp/phyllome-tui-test")),
                          proc=MACHINE / "proc", sys_root=MACHINE / "sys")
    return create_installer_app(installer, console=True)


async def test_every_installer_screen_draws_only_console_glyphs_and_shows_focus():
    walk, app = Walk(), installer_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await walk.check(pilot, "welcome")
        await pilot.press("f1")
        await walk.check(pilot, "help")
        await pilot.press("escape")
        await pilot.press("ctrl+q")
        await walk.check(pilot, "quit")
        await pilot.press("escape")
    for name, step in (("disk", to_disk), ("encryption", to_encryption), ("host and user", to_host),
                       ("summary", walk_to_summary)):
        app = installer_app()
        async with app.run_test(size=SIZE) as pilot:
            await step(pilot)
            await walk.check(pilot, name)
            if name == "encryption":  # the checkbox off: its mark and words change
                app.screen.query_one("#enabled").focus()
                await pilot.press("space")
                await walk.check(pilot, "encryption off")
            if name == "summary":
                config, _ = app.config()
                await app.push_screen(DoneScreen(config, {"/var/lib/libvirt/images": CODE}))
                await walk.check(pilot, "done")
                await app.push_screen(FailureScreen("ostree-deploy", "command failed with exit code 1: ostree "
                                                    "admin deploy ...\n  | error: No space left on device"))
                await walk.check(pilot, "failure")
    assert walk.seen == ["welcome", "help", "quit", "disk", "encryption", "encryption off", "host and user",
                         "summary", "done", "failure"]


@pytest.fixture
def firstboot_app(tmp_path):
    from tests.tui import firstboot_helpers

    def make(**kwargs):
        made = firstboot_helpers.make_app(tmp_path, machine="this-ci-vm", console=True, **kwargs)
        made.session = SavedHostSession(made.session.runner, root=made.session.root, uri="qemu:///system",
                                        store=made.session.store)
        return made
    yield make
    shutil.rmtree(tmp_path, ignore_errors=True)


async def settle(pilot):
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_every_firstboot_screen_draws_only_console_glyphs_and_shows_focus(firstboot_app):
    walk, app = Walk(), firstboot_app(unlocker=ScriptedUnlocker())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await walk.check(pilot, "unlock")
        await pilot.press(*"right passphrase", "enter")
        await settle(pilot)
        await walk.check(pilot, "checks")
        await pilot.press("ctrl+q")
        await walk.check(pilot, "quit")
        await pilot.press("escape")
        await pilot.click("#next")
        await settle(pilot)
        await walk.check(pilot, "graphics")
        await pilot.click("#next")
        await settle(pilot)
        await walk.check(pilot, "vm")
        app.screen.query_one("#os").value = "win11"
        await pilot.click("#next")
        await settle(pilot)
        await walk.check(pilot, "review")
        await pilot.press("enter")
        await settle(pilot)
        await walk.check(pilot, "done")
    assert walk.seen == ["unlock", "checks", "quit", "graphics", "vm", "review", "done"]


def test_the_theme_is_chosen_by_the_terminal():
    assert console.wanted({"TERM": "linux"}) and console.wanted({"TERM": "linux-16color"})
    assert console.wanted({"TERM": "vt220"}) and console.wanted({"TERM": "xterm-256color", "NO_COLOR": "1"})
    assert not console.wanted({"TERM": "xterm-256color"}) and not console.wanted({"TERM": "tmux-256color"})
    assert not console.wanted({"TERM": "linux", "PHYLLOME_CONSOLE": "0"})
    assert console.wanted({"TERM": "xterm", "PHYLLOME_CONSOLE": "1"})
