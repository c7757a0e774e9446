"""The log: one run per file, never through a symlink or onto a hard link, a root-only default directory."""

from __future__ import annotations

import os
import stat

import pytest

from phyllome_installer.cli import install_main
from phyllome_installer.core.errors import UserError
from phyllome_installer.core.logs import setup_logging

GOOD = os.path.join(os.path.dirname(__file__), "..", "data", "answers", "good", "minimal.toml")


def test_log_through_a_symlink_is_refused_and_its_target_untouched(tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "install.log"
    link.symlink_to(victim)
    assert install_main(["validate", GOOD, "--log", str(link)]) == 2
    assert "is a symbolic link; refused" in capsys.readouterr().err
    assert victim.read_text() == "precious\n"


def test_log_with_another_hard_link_is_refused(tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.link(victim, tmp_path / "install.log")
    assert install_main(["validate", GOOD, "--log", str(tmp_path / "install.log")]) == 2
    assert "other hard links" in capsys.readouterr().err
    assert victim.read_text() == "precious\n"


def test_a_fifo_as_the_log_is_refused_without_blocking(tmp_path, capsys):
    os.mkfifo(tmp_path / "fifo")
    assert install_main(["validate", GOOD, "--log", str(tmp_path / "fifo")]) == 2
    assert "cannot write the install log" in capsys.readouterr().err  # ENXIO: nobody reads it; never blocks


def test_an_unwritable_log_is_a_clean_error(tmp_path, capsys):
    assert install_main(["validate", GOOD, "--log", "/proc/version/x.log"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("phyllome-install: error: cannot write the install log /proc/version/x.log")
    assert "Traceback" not in err


def test_the_log_holds_one_run(tmp_path):
    log = tmp_path / "install.log"
    assert install_main(["validate", GOOD, "--log", str(log)]) == 0
    first = log.read_text()
    assert install_main(["validate", GOOD, "--log", str(log)]) == 0
    assert log.read_text().count("phyllome-install 0.") == 1 and first.count("phyllome-install 0.") == 1
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_the_default_directory_is_root_only(tmp_path):
    directory = tmp_path / "var-log" / "phyllome"
    handle = setup_logging(None, None, default=directory / "install.log")
    handle.close()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    os.chmod(directory, 0o755)  # loosened by someone: tightened again
    setup_logging(None, None, default=directory / "install.log").close()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_a_symlinked_default_directory_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "phyllome").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="not a directory"):
        setup_logging(None, None, default=tmp_path / "phyllome" / "install.log")


def test_dev_null_is_accepted_as_no_log(tmp_path):
    assert install_main(["validate", GOOD, "--log", "/dev/null"]) == 0


def test_a_file_that_is_not_a_log_is_never_overwritten(tmp_path, capsys):
    answers = tmp_path / "mine.toml"
    answers.write_text(open(GOOD).read())
    before = answers.read_text()
    assert install_main(["validate", str(answers), "--log", str(answers)]) == 2
    assert "is not a log of this program" in capsys.readouterr().err
    assert answers.read_text() == before
    # a log of an earlier run is replaced, as always
    log = tmp_path / "install.log"
    assert install_main(["validate", GOOD, "--log", str(log)]) == 0
    assert install_main(["validate", GOOD, "--log", str(log)]) == 0


@pytest.mark.parametrize("path", ["/proc/sys/vm/swappiness", "/sys/kernel/mm/ksm/run", "/dev/shm/x.log"])
def test_kernel_settings_and_devices_are_never_a_log(path, capsys):
    before = open(path).read() if os.path.exists(path) else None
    assert install_main(["validate", GOOD, "--log", path]) == 2
    assert "is not a log" in capsys.readouterr().err
    if before is not None:
        assert open(path).read() == before
