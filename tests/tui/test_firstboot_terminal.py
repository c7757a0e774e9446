"""A real terminal: tmux at 80x25 with TERM=linux (the console theme) runs `phyllome-firstboot tui` and is typed
through to the Done screen, with the real dry run on qemu:///embed (no daemon), starting from a partial saved
[firstboot]."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phyllome_installer.answers import FirstBoot
from tests.libvirt import embed
from tests.tui.firstboot_helpers import machine_copy
from tests.tui.test_terminal import Tmux

pytestmark = [pytest.mark.root, pytest.mark.libvirt]
FIRSTBOOT = Path(sys.executable).parent / "phyllome-firstboot"


def test_the_first_boot_in_a_linux_console_sized_terminal(tmp_path):
    root = machine_copy(tmp_path, "this-ci-vm")
    (root / "etc/phyllome/firstboot.toml").write_text(FirstBoot.model_validate(
        {"vm": {"name": "desk", "memory": "1GiB", "disk_size": "12GiB", "start": False}}).to_toml())
    store = tmp_path / "images"
    store.mkdir()
    log = tmp_path / "firstboot.log"
    with embed.short_root("fbt-") as lvroot:
        uri, env = embed.prepare(lvroot)
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        command = (f"TERM=linux PHYLLOME_CONSOLE=1 {exports} {shlex.quote(str(FIRSTBOOT))} tui --root {root} "
                   f"--store {store} --uri {shlex.quote(uri)} --log {log}; echo EXITED-$?; sleep 60")
        term = Tmux(f"phyllome-fb-test-{time.monotonic_ns()}", command)
        try:
            screen = term.wait_for("Step 2 of 7 · Hardware checks")
            term.wait_for("PASS")
            term.keys("Enter")
            screen = term.wait_for("Step 3 of 7 · Graphics")
            assert "first boot: checks" not in screen  # log lines never draw over the screens
            term.keys("Enter")
            screen = term.wait_for("Step 4 of 7 · Primary VM")
            assert "none (add one later)" in screen
            term.keys("Tab", "Enter")  # the OS list, opened
            term.type("fedora linux 37")  # typing jumps to "Fedora Linux 37 (fedora37)"
            term.keys("Enter")
            assert "Fedora Linux 37 (fedora37)" in term.wait_for("(fedora37)")
            term.keys("Tab")
            for _ in range(5):  # name, memory, CPUs, disk size (prefilled from [firstboot]), Next; press Next
                term.keys("Enter")
            screen = term.wait_for("Step 5 of 7 · Review", timeout=60)
            assert "1 GiB" in screen and "from: user" in screen
            term.keys("Enter")  # Create the VM
            screen = term.wait_for("Step 7 of 7 · Done", timeout=120)
            assert "[ok] dry run passed" in screen and "virsh -c" in screen and "start desk" in screen
            term.keys("Enter")  # Finish
            term.wait_for("EXITED-0")
        finally:
            term.close()
            env_all = dict(os.environ, **env)
            names = subprocess.run(["virsh", "-q", "-c", uri, "list", "--all", "--name"], capture_output=True,
                                   text=True, env=env_all, check=False).stdout.split()
            for name in names:
                subprocess.run(["virsh", "-q", "-c", uri, "undefine", name, "--nvram"], capture_output=True,
                               env=env_all, check=False)
            for pid in embed.qemu_pids(lvroot):
                os.kill(pid, 9)
    assert names == ["desk"]
    assert not (root / "etc/phyllome/firstboot").exists()
    assert json.loads((root / "var/lib/phyllome/firstboot.json").read_text())["ok"]
