"""The dry run is the real run: what ``install --dry-run`` shows is what a real sandbox install then logs, command
for command, and the dry run writes nothing anywhere (root tier)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root
ANSWERS = Path(__file__).resolve().parents[1] / "data" / "answers" / "good" / "reference.toml"
#: Commands that only read: the real run also verifies what it wrote (blkid after sfdisk, fscrypt status).
READS = ("blkid ", "sfdisk -J ", "fscrypt status ", "ostree admin status ", "ostree --repo=")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "phyllome_installer.cli", *args], capture_output=True, text=True,
                          check=False, timeout=600)


def normalised(command: str, image: Path) -> str:
    command = command.replace("'", "").replace(str(image), "<disk>")
    command = re.sub(r"/dev/loop\d+p?", "<disk>", command)
    command = re.sub(r"root=UUID=\S+", "root=UUID=<uuid>", command)
    command = re.sub(r"deploy/[0-9a-f]{64}\.0", "deploy/<commit>.0", command)
    command = re.sub(r":(<recovery-protector>|<policy>|[0-9a-f]{16,})", ":<id>", command)
    return re.sub(r"\s+< stdin not shown$", "", command).strip()


def test_the_dry_run_shows_exactly_what_the_real_install_runs(tmp_path):
    base = tmp_path / "sandbox"
    dry = cli("install", "--sandbox", "--sandbox-dir", str(base), "--answers", str(ANSWERS), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "after the install: nothing (the target is not this machine)" in dry.stdout  # [post] action said
    assert not tmp_path.joinpath("sandbox").exists()  # nothing written: no image, no payload, no log
    image = base / "disk.img"
    shown = [normalised(line.strip().removeprefix("run: "), image) for line in dry.stdout.splitlines()
             if line.startswith("    run: ")]
    shown = [c for c in shown if not c.startswith("blockdev --flushbufs")]  # the real run flushes after detaching
    log = tmp_path / "install.log"
    real = cli("install", "--sandbox", "--sandbox-dir", str(base), "--answers", str(ANSWERS), "--log", str(log))
    assert real.returncode == 0, real.stderr[-3000:]
    text = log.read_text()
    engine = text[text.index("[2/10] partition"):]  # to the end: the unmounts follow "install finished"
    ran = [normalised(m, image) for m in re.findall(r"DEBUG\s+phyllome\.run: \$ (.*?)(?:  \(stdin: \d+ characters, "
                                                     r"not logged\))?(?:  \(in \S+\))?$", engine, re.MULTILINE)]
    # The sandbox releases its loop device after the install (not a task of the plan).
    ran = [c for c in ran if not c.startswith(("blockdev --flushbufs", "partx -d", "losetup -d"))]
    # Every command shown runs, in the order shown ...
    position = 0
    for command in shown[shown.index(next(c for c in shown if "blivet_worker" in c)):]:
        assert command in ran[position:], f"shown but not run: {command}\nran:\n" + "\n".join(ran)
        position = ran.index(command, position) + 1
    # ... and every command that changes something was shown.
    writes = [c for c in ran if not c.startswith(READS)]
    missing = [c for c in writes if c not in shown]
    assert missing == [], "run but not shown in the dry run:\n" + "\n".join(missing)
