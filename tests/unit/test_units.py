"""The systemd units: each passes `systemd-analyze verify` in a system tree that has what it runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from phyllome_installer import units

ALL = units.INSTALLED_UNITS + units.LIVE_UNITS


@pytest.fixture
def tree(tmp_path):
    """A system tree with the units installed and the programs they run (stand-ins) in /usr/bin."""
    root = tmp_path / "root"
    # The host's own units (targets, getty@.service, ...) stand in for the payload's, as on a real system.
    shutil.copytree("/lib/systemd/system", root / units.UNIT_DIR, symlinks=True)
    units.install(root, ALL)
    bin_dir = root / "usr/bin"
    bin_dir.mkdir(parents=True)
    for program in ("phyllome-install", "phyllome-firstboot", "kill", "systemctl"):
        (bin_dir / program).write_text("#!/bin/sh\n")
        (bin_dir / program).chmod(0o755)
    return root


def _verify(root, name):
    return subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", name],
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize("name", ALL)
def test_every_unit_passes_systemd_analyze_verify(tree, name):
    result = _verify(tree, name)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # warnings (unknown keys, bad values) leave rc 0


def test_verify_fails_for_a_broken_unit_so_the_test_above_can_fail(tree):
    path = tree / units.UNIT_DIR / "phyllome-unlock.service"
    path.write_text(path.read_text().replace("Type=oneshot", "Type=oneshot-typo"))
    assert "Failed to parse service type" in _verify(tree, "phyllome-unlock.service").stderr
    (tree / "usr/bin/phyllome-firstboot").unlink()
    assert _verify(tree, "phyllome-firstboot.service").returncode != 0


def test_units_are_enabled_as_systemctl_enables_them_and_order_as_the_design_says(tree):
    """The one way (units.install): the files in /usr/lib/systemd/system, their [Install] links written by
    `systemctl --root` under /etc (the payload's build then moves /etc to /usr/etc, ostree's defaults)."""
    wants = tree / "etc/systemd/system/multi-user.target.wants"
    assert set(ALL) <= set(os.listdir(wants))
    assert os.readlink(wants / "phyllome-unlock.service") == "/usr/lib/systemd/system/phyllome-unlock.service"
    assert (tree / "etc/systemd/system/libvirtd.service.wants/phyllome-unlock.service").is_symlink()
    assert all((tree / units.UNIT_DIR / name).is_file() for name in ALL)
    unlock = units.unit_text("phyllome-unlock.service")
    assert "Before=libvirtd.service virtqemud.service" in unlock and "After=local-fs.target" in unlock
    first = units.unit_text("phyllome-firstboot.service")
    for line in ("Type=oneshot", "TimeoutSec=0", "ConditionPathExists=/etc/phyllome/firstboot",
                 "Before=getty@tty1.service getty-pre.target display-manager.service", "kill -55 1", "kill -54 1"):
        assert line in first
    live = units.unit_text("phyllome-installer.service")
    for line in ("TTYPath=/dev/tty1", "TTYReset=yes", "TTYVHangup=yes", "StandardInput=tty",
                 "Environment=TERM=linux", "Conflicts=getty@tty1.service"):
        assert line in live


def _directive(text: str, key: str) -> set[str]:
    return {word for line in text.splitlines() if line.startswith(f"{key}=") for word in line[len(key) + 1:].split()}


def test_the_unlock_prompt_comes_before_systemd_hands_password_requests_to_wall():
    """Once the units that systemd's wall agent waits for have run, its ExecStartPre stops the console agent: an
    unlock asked later never shows its prompt, or shows it and reads nothing (seen booting the installed disk).
    The unlock must be ordered before every unit the wall agent is ordered after, as this system's systemd ships it."""
    wall = Path("/lib/systemd/system/systemd-ask-password-wall.service")
    if not wall.exists():
        pytest.skip("this system's systemd ships no systemd-ask-password-wall.service")
    text = wall.read_text()
    assert "systemd-ask-password-console" in text  # the reason: it stops the console agent
    waits_for = _directive(text, "After")
    assert waits_for, text
    assert waits_for <= _directive(units.unit_text("phyllome-unlock.service"), "Before")


def test_the_marker_path_in_the_unit_is_the_one_the_code_uses():
    from firstboot.state import MARKER

    assert f"ConditionPathExists=/{MARKER}" in units.unit_text("phyllome-firstboot.service")


@pytest.mark.parametrize("name", ["phyllome-firstboot.service", "phyllome-installer.service"])
def test_the_screens_units_give_textual_the_tty_on_stderr(name):
    """Textual's Linux driver draws on stderr (sys.__stderr__): a unit that sends stderr to the journal shows a
    blank tty1 (the live installer was; the first boot would have been)."""
    import importlib.util

    driver = importlib.util.find_spec("textual.drivers.linux_driver").origin  # read, not imported: no textual here
    assert "sys.__stderr__" in Path(driver).read_text()  # what this test relies on
    text = (Path(units.__file__).parent / "data/systemd" / name).read_text()
    settings = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["StandardError"] == "tty" and settings["TTYPath"] == "/dev/tty1", settings


@pytest.mark.parametrize("name", ["phyllome-firstboot.service", "phyllome-installer.service"])
def test_the_kernels_messages_stay_off_the_screens_and_come_back_after(name):
    """An RCU stall printed on tty1 overwrote the installer's first lines on a slow machine (CI, the ISO test):
    while a screen owns the console only KERN_EMERG reaches it, and the saved level is restored however it ends."""
    text = (Path(units.__file__).parent / "data/systemd" / name).read_text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert "ExecStartPre=-/usr/bin/dmesg --console-off" in lines
    assert "ExecStopPost=-/usr/bin/dmesg --console-on" in lines
