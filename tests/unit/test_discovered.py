"""frontend.discover_answers: the discovered file judged once for every front end."""

from __future__ import annotations

from pathlib import Path

import pytest

from phyllome_installer.bootanswers import Boot
from phyllome_installer.core.runner import RecordingRunner
from phyllome_installer.discover import Discovery
from phyllome_installer.frontend import discover_answers

GOOD = Path(__file__).resolve().parents[1] / "data" / "answers" / "good" / "minimal.toml"


def judge(tmp_path: Path, text: str | None, cmdline: str = "quiet"):
    runner = RecordingRunner()
    runner.respond(["blkid", "-L"], returncode=2)
    (tmp_path / "cmdline").write_text(cmdline)
    discovery = Discovery(runner, cmdline=tmp_path / "cmdline")
    cli = None
    if text is not None:
        cli = tmp_path / "given.toml"
        cli.write_text(text)
    return discover_answers(discovery, cli, boot=Boot(tmp_path / "run" / "answers.toml",
                                                       tmp_path / "run" / "boot-status"))


def test_complete_and_unattended_only_with_the_kernel_argument(tmp_path):
    text = GOOD.read_text()  # it has wipe consent
    assert judge(tmp_path, text).state == "complete"
    assert not judge(tmp_path, text).unattended
    found = judge(tmp_path, text, "quiet phyllome.unattended=1")
    assert found.state == "complete" and found.unattended and found.config.storage.wipe == "/dev/vda"
    assert not judge(tmp_path, text, "phyllome.unattended=0").unattended


def test_complete_without_wipe_is_never_unattended(tmp_path):
    text = GOOD.read_text().replace('wipe = "/dev/vda"\n', "")
    found = judge(tmp_path, text, "phyllome.unattended=1")
    assert found.state == "complete" and not found.unattended


def test_partial_is_only_missing_answers(tmp_path):
    found = judge(tmp_path, 'version = 1\n[host]\nhostname = "lab"\n')
    assert found.state == "partial"
    assert any("storage: missing required table" in p for p in found.problems)


@pytest.mark.parametrize("text", [
    'version = 1\n[host]\nhostname = "-lab"\n',     # invalid value
    'version = 1\n[host]\nhostnme = "lab"\n',       # unknown key
    'version = 1\n[host\n',                          # TOML syntax
])
def test_broken_has_file_line_col_problems(tmp_path, text):
    found = judge(tmp_path, text)
    assert found.state == "broken"
    assert all(p.startswith(f"{tmp_path / 'given.toml'}:") for p in found.problems), found.problems


def test_a_failed_source_is_broken_with_its_message(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "boot-status").write_text("failed phyllome.answers=hd:LABEL=K:/a.toml: no filesystem\n")
    found = judge(tmp_path, None, "phyllome.answers=hd:LABEL=K:/a.toml")
    assert found.state == "broken" and found.data is None
    assert found.problems == ("at boot: phyllome.answers=hd:LABEL=K:/a.toml: no filesystem",)


def test_nothing_found(tmp_path):
    assert judge(tmp_path, None).state == "none"
