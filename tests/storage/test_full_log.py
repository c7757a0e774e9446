"""The log's filesystem is full (root tier: a real tmpfs filled to the last byte): the command's result stands,
the console says once that the log stopped, no logging traceback, and closing the log never changes the exit."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from phyllome_installer.core.logs import setup_logging
from phyllome_installer.core.progress import LogLine
from phyllome_installer.core.sinks import Sink

pytestmark = pytest.mark.root
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "answers" / "good" / "reference.toml"


@pytest.fixture
def full(tmp_path):
    mount = tmp_path / "full"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={mount}/filler", "bs=4k"], capture_output=True, check=False)
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode:
            subprocess.run(["umount", "--lazy", str(mount)], check=False)  # a log left open by a failing test


class Lines(Sink):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def emit(self, event) -> None:
        if isinstance(event, LogLine):
            self.lines.append(event.line)


def test_a_full_log_filesystem_is_said_once_and_the_run_goes_on(full, capsys):
    sink = Lines()
    log = setup_logging(full / "install.log", sink)
    logger = logging.getLogger("phyllome.test")
    for number in range(500):
        logger.info("line %d of a long install", number)
    log.close()  # never raises
    warnings = [line for line in sink.lines if "can no longer be written" in line]
    assert len(warnings) == 1 and "No space left on device" in warnings[0]
    assert "Traceback" not in capsys.readouterr().err


def test_a_command_whose_log_fills_up_keeps_its_exit_code(full):
    command = [str(Path(sys.executable).parent / "phyllome-install"), "validate", str(REFERENCE),
               "--log", str(full / "validate.log")]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
