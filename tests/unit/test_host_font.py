"""The installed host's console font (issue 21): vconsole.conf names the live medium's 512-glyph font, copied into
the deployment's /etc, so the first boot on tty1 draws what the installer drew. Hostile font files name none."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from phyllome_installer import answers
from phyllome_installer.core.runner import RecordingRunner
from phyllome_installer.hostconfig import HOST_FONT, HostConfig

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "answers" / "good" / "reference.toml"
PSF1 = b"\x36\x04\x03\x10" + bytes(512 * 16) + b"\xff\xff" * 512  # 512 glyphs of 8x16 with a Unicode table


@pytest.fixture
def host():
    return answers.load(REFERENCE, redactor=None).config.host


def _configure(tmp_path: Path, host, font: Path) -> Path:
    deployment = tmp_path / "deploy"
    (deployment / "etc").mkdir(parents=True, exist_ok=True)
    HostConfig(RecordingRunner(), deployment).system_files(host, cpu_vendor="intel", fstab_text="", font=font)
    return deployment


def test_the_live_font_is_copied_into_etc_and_named_by_path(tmp_path, host):
    font = tmp_path / "phyllome16.psf.gz"
    font.write_bytes(gzip.compress(PSF1, mtime=0))
    deployment = _configure(tmp_path, host, font)
    conf = (deployment / "etc/vconsole.conf").read_text()
    assert conf == f"KEYMAP={host.keyboard}\nFONT=/{HOST_FONT}\n"
    copied = deployment / HOST_FONT
    assert copied.read_bytes() == font.read_bytes() and (copied.stat().st_mode & 0o777) == 0o644
    assert HOST_FONT.startswith("etc/")  # /usr is the payload's: a later deployment would lose it


def test_no_font_or_a_hostile_one_names_none_and_writes_nothing(tmp_path, host):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.psf.gz"
    big.write_bytes(b"\x1f\x8b" + os.urandom(1 << 20))
    text = tmp_path / "text.psf.gz"
    text.write_text("FONT=/etc/shadow\n")
    link = tmp_path / "link.psf.gz"
    link.symlink_to("/dev/zero")
    for number, case in enumerate((tmp_path / "missing", fifo, big, text, link, tmp_path)):
        deployment = _configure(tmp_path / "roots" / str(number), host, case)
        assert (deployment / "etc/vconsole.conf").read_text() == f"KEYMAP={host.keyboard}\n", case
        assert not (deployment / HOST_FONT).exists(), case
