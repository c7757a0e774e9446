"""A real terminal: tmux at 80x25 with TERM=linux (the console theme) runs `phyllome-install --sandbox` and is typed
through (root):
the whole flow, and Ctrl+C in the middle of the install."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]


class Tmux:
    def __init__(self, name: str, command: str) -> None:
        self.name = name
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "25", command], check=True)

    def keys(self, *keys: str, literal: bool = False) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *(["-l"] if literal else []), *keys], check=True)
        time.sleep(0.3)

    def type(self, text: str) -> None:
        self.keys(text, literal=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True,
                              check=True).stdout

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            assert "Traceback" not in screen, screen
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen is:\n{self.screen()}")

    def close(self) -> None:
        """End the installer this session started (by its pid: a TUI whose terminal vanished may hang, holding the
        install lock), then the session."""
        pane = subprocess.run(["tmux", "display-message", "-p", "-t", self.name, "#{pane_pid}"], capture_output=True,
                              text=True, check=False).stdout.strip()
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if pane and fields[1] == pane:
                children.append(int(stat.parent.name))
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while children and time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in children):
            time.sleep(0.2)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["tmux", "kill-session", "-t", self.name], check=False)


def start(tmp_path: Path) -> Tmux:
    log = tmp_path / "install.log"
    command = (f"cd {shlex.quote(str(ROOT))} && TERM=linux PHYLLOME_CONSOLE=1 "
               f"PHYLLOME_SAVE_ANSWERS={tmp_path}/saved.toml "
               f"{shlex.quote(sys.executable)} -m phyllome_installer.cli --sandbox --sandbox-dir {tmp_path}/sandbox "
               f"--log {log}; echo EXITED-$?; sleep 60")
    return Tmux(f"phyllome-test-{time.monotonic_ns()}", command)


def walk_to_summary(term: Tmux) -> str:
    term.wait_for("Step 1 of 7 · Welcome")
    term.wait_for("Next: choose the disk")
    time.sleep(1)  # the first paint comes before the keyboard is read (on 2 busy cores)
    term.keys("Tab")
    term.keys("Enter")
    term.wait_for("Step 2 of 7 · Disk")
    term.wait_for("Sandbox disk image")
    term.keys("Enter")
    term.wait_for("Step 3 of 7 · Encryption")
    screen = term.screen()
    assert "layout: us" in screen and "Encrypt the VM store (recommended): ON" in screen
    for _ in range(2):
        term.type("correct horse battery")
        term.keys("Enter")
    screen = term.wait_for("Step 4 of 7 · Host and user")
    assert "Hostname:" in screen and "Password again:" in screen
    term.keys("Enter")  # keep the hostname
    term.keys("End", "BSpace", "BSpace", "BSpace")
    term.type("Europe/Paris")
    term.keys("Enter")
    term.type("admin")
    term.keys("Enter")
    for _ in range(2):
        term.type("a long password")
        term.keys("Enter")
    term.keys("Enter")  # no SSH key
    screen = term.wait_for("Type yes to install")
    assert "Step 5 of 7 · Summary" in screen and "ALL DATA ON THIS DISK WILL BE ERASED" in screen
    assert "Time zone:       Europe/Paris" in screen
    return screen


def test_the_whole_flow_in_a_linux_console_sized_terminal(tmp_path):
    term = start(tmp_path)
    try:
        walk_to_summary(term)
        term.type("yes")
        term.keys("Enter")
        term.wait_for("Step 6 of 7 · Installing")
        screen = term.wait_for("Step 7 of 7 · Done", timeout=180)
        assert "Phyllome OS is installed" in screen and "Recovery code" in screen
        term.keys("C-q")
        screen = term.wait_for("Quit the installer?")
        assert "recovery code" in screen and "Nothing has been written" not in screen
        term.keys("Enter")  # the focus is on Stay
        term.wait_for("Step 7 of 7 · Done")
        term.keys("C-q")
        term.wait_for("Quit the installer?")
        term.keys("y")
        term.wait_for("EXITED-0")
    finally:
        term.close()
    assert "correct horse battery" not in (tmp_path / "install.log").read_text()


def test_ctrl_c_mid_install_stops_it_says_the_disk_is_not_bootable_and_exits_non_zero(tmp_path):
    term = start(tmp_path)
    try:
        walk_to_summary(term)
        term.type("yes")
        term.keys("Enter")
        term.wait_for("Step 6 of 7 · Installing")
        term.wait_for("[..]")  # a task is running
        term.keys("C-c")  # the same as Ctrl+Q: it asks first
        screen = term.wait_for("Stop the install and quit?")
        assert "bootable" in screen and "Keep installing (n)" in screen
        term.keys("y")
        screen = term.wait_for("Step 7 of 7 ·", timeout=180)
        if "Step 7 of 7 · Done" in screen:  # it had finished before it could stop: the code comes first
            assert "Recovery code" in screen
            term.keys("C-q")
            term.keys("y")
            term.wait_for("EXITED-0")
            return
        screen = term.wait_for("The install was stopped.")
        assert "Step 7 of 7 · Failed" in screen
        assert "NOT bootable" in screen or "Nothing was written" in screen
        term.keys("q")
        screen = term.wait_for("EXITED-130")
    finally:
        term.close()
    log = (tmp_path / "install.log").read_text()
    assert "interrupted" in log and "correct horse battery" not in log
    # The sandbox image is released: nothing of it stays attached.
    attached = subprocess.run(["losetup", "-j", str(tmp_path / "sandbox" / "disk.img")], check=False,
                              capture_output=True, text=True).stdout
    assert not attached.strip(), attached
