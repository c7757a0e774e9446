"""Discovery from a real labelled filesystem on a loop device (root tier)."""

from __future__ import annotations

import os

import pytest

from phyllome_installer.core.errors import UserError
from phyllome_installer.core.runner import SubprocessRunner
from phyllome_installer.discover import Discovery
from tests.loopdev import loop_image, mounted, sh

pytestmark = pytest.mark.root

ANSWERS = "version = 1\n# from a labelled partition\n"


@pytest.fixture
def labelled(tmp_path):
    """A GPT image whose first partition is ext4 labelled PHYLLOME-ANS (unique per test to avoid collisions)."""
    label = "PHYLLOME-ANS"
    with loop_image(tmp_path / "ans.img", "32M", "label: gpt\n,\n") as device:
        part = device + "p1"
        sh("mkfs.ext4", "-q", "-L", label, part)
        with mounted(part, tmp_path / "m") as where:
            (where / "answers.toml").write_text(ANSWERS)
            (where / "other.toml").write_text(ANSWERS)
        yield part


def discovery(tmp_path, cmdline="quiet"):
    (tmp_path / "cmdline").write_text(cmdline)
    return Discovery(SubprocessRunner(), cmdline=tmp_path / "cmdline", dest=tmp_path / "run" / "answers.toml")


def _not_mounted(device):
    return all(not line.startswith(device + " ") for line in open("/proc/mounts"))


def test_labelled_partition_is_found_copied_and_unmounted(tmp_path, labelled):
    found = discovery(tmp_path).find()
    assert found is not None and found.source == f"partition labelled PHYLLOME-ANS ({labelled})"
    assert found.path.read_text() == ANSWERS
    assert oct(os.stat(found.path).st_mode & 0o777) == "0o600"
    assert _not_mounted(labelled)


def test_hd_label_form(tmp_path, labelled):
    found = discovery(tmp_path, "phyllome.answers=hd:LABEL=PHYLLOME-ANS:/other.toml").find()
    assert found.path.read_text() == ANSWERS
    assert _not_mounted(labelled)


def test_missing_file_on_the_partition_is_an_error_and_it_is_unmounted(tmp_path, labelled):
    with pytest.raises(UserError, match="does not exist"):
        discovery(tmp_path, "phyllome.answers=hd:LABEL=PHYLLOME-ANS:/absent.toml").find()
    assert _not_mounted(labelled)
