"""Consent is bound to the disk, not to its path: a path re-pointed at another disk between the summary and
the install is refused before anything is written (root tier, real loop devices)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from phyllome_installer import answers, engine
from phyllome_installer.core.errors import UserError
from phyllome_installer.core.runner import SubprocessRunner
from phyllome_installer.plan import build
from storage.probe import Prober
from tests.loopdev import sh

pytestmark = pytest.mark.root
MINIMAL = Path(__file__).resolve().parents[1] / "data" / "answers" / "good" / "minimal.toml"


def test_a_path_re_pointed_at_another_disk_is_refused(tmp_path):
    first, second = tmp_path / "first.img", tmp_path / "second.img"
    for image in (first, second):
        sh("truncate", "-s", "12G", str(image))
    device = sh("losetup", "--find", "--show", str(first)).strip()
    try:
        runner = SubprocessRunner()
        confirmed = Prober(runner, include_loop=True, only=[device]).disks()[0]
        assert confirmed.identity.startswith("file:")
        # Between the summary and the install, the same path comes to name another disk.
        sh("losetup", "-d", device)
        sh("losetup", device, str(second))
        assert second.stat().st_blocks == 0  # sparse: any write would allocate blocks
        config = answers.parse(MINIMAL.read_text().replace("/dev/vda", device), redactor=None).config
        assert config is not None
        machine = Prober(runner, include_loop=True, only=[device]).profile()
        plan = build(config, machine, runner, sysroot=tmp_path / "sysroot", include_loop=True,
                     consent=confirmed.identity)
        result = engine.run(plan)
        assert not result.ok and result.failed_task == "check" and result.exit_code == 2
        assert "is not the disk you agreed to erase" in result.error and not result.touched
        assert second.stat().st_blocks == 0  # nothing was written to the other disk
        # The disk that was confirmed, back at its path, passes the same check.
        sh("losetup", "-d", device)
        sh("losetup", device, str(first))
        again = build(config, Prober(runner, include_loop=True, only=[device]).profile(), runner,
                      sysroot=tmp_path / "sysroot", include_loop=True, consent=confirmed.identity)
        assert again.context.consent == confirmed.identity
        with pytest.raises(UserError) as error:  # the check goes past the disk, to the (absent) payload
            again.tasks[0].run(again.context)
        assert "payload.repo" in str(error.value)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
