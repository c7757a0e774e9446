"""Both apps on a real Linux virtual console (marker vt): Debian's kernel under QEMU with a VGA text console
(80x25, the card's CP437 font), the VM tier's kernel and initramfs, each app on tty1 with TERM=linux, walked by
tests/vt/guest_apps.py. One boot runs both apps twice: at 80x25 on the VGA text console, then, once the kernel's
bochs DRM driver has given tty1 a 1024x768 framebuffer console (fbcon, 8x16 font), at 128x48. Fails on a character
the console font cannot draw and on a Tab that changes nothing on screen. Pictures of every screen (QEMU's
screendump, PNG) go to $PHYLLOME_VT_PICTURES (docs/console/ is made with
``PHYLLOME_VT_PICTURES=docs/console .venv/bin/pytest -m vt``)."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest

from tests.vm import harness
from tests.vt import qemu_console

pytestmark = [pytest.mark.vt, pytest.mark.root]
ROOT = Path(__file__).resolve().parents[2]
APPS = ("installer", "firstboot")
SIZES = ("80x25", "128x48")
FRAMEBUFFER = "1024x768"


def guest_script() -> Path:
    """Both apps on tty1, one after the other, with TERM=linux (the console theme): on the VGA text console, then
    on a framebuffer console, in one boot (the VM tier's kernel is booted; its bochs driver comes from its tree)."""
    python = shlex.quote(sys.executable)
    kernel = harness.fetch_kernel()
    lines = ["set -u", f"cd {shlex.quote(str(ROOT))}", "export TERM=linux LANG=C.UTF-8", "rc=0"]

    def apps(size: str) -> None:
        for app in APPS:
            # Textual draws on stderr: all three on tty1 (the driver writes its own errors to the results share).
            lines.append(f"setsid -c -w {python} -m tests.vt.guest_apps /mnt/out {app} {size} </dev/tty1 "
                         ">/dev/tty1 2>&1 || rc=1")

    apps(SIZES[0])
    # fbcon takes tty1 over when the DRM driver of QEMU's standard VGA binds: 1024x768 (video=) in 8x16 cells.
    lines += [f"modprobe -d {shlex.quote(str(kernel.root))} bochs > /mnt/out/bochs.log 2>&1 || rc=1",
              "for i in $(seq 120); do [ \"$(stty -F /dev/tty1 size)\" = '48 128' ] && break; sleep 1; done",
              "stty -F /dev/tty1 size >> /mnt/out/bochs.log"]
    apps(SIZES[1])
    lines.append("exit $rc")
    script = harness.CACHE / "run-vt.sh"
    script.write_text("\n".join(lines) + "\n")
    return script


@pytest.fixture(scope="module")
def console_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vt") / "out"
    pictures = Path(os.environ.get("PHYLLOME_VT_PICTURES") or out / "pictures")
    rc, console = qemu_console.boot(guest_script(), out, pictures)
    return out, rc, console


def explain(out: Path, console: str) -> str:
    parts = [f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(out.glob("*"))
             if p.suffix in (".err", ".log", ".txt")]
    return "\n".join(parts) + f"\n--- serial ---\n{console[-2000:]}"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("app", APPS)
def test_every_screen_draws_with_the_console_font_and_shows_each_tab(console_run, app, size):
    out, rc, console = console_run
    path = out / f"result-{app}-{size}.json"
    assert path.exists(), explain(out, console)
    result = json.loads(path.read_text())
    assert result["error"] is None, result["error"] + explain(out, console)
    assert result["size"] == size, explain(out, console)  # the console tty1 really had
    assert result["font_size"] > 200  # the console font's Unicode map was read
    assert result["bad_chars"] == {}, explain(out, console)
    assert result["dead_tabs"] == [], explain(out, console)
    expected = {"installer": ["welcome", "keyboard list", "disk", "encryption", "host and user", "summary", "help",
                              "quit"],
                "firstboot": ["unlock", "checks", "graphics", "vm", "review", "quit"]}[app]
    assert result["screens"] == expected
