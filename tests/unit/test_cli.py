from __future__ import annotations

import subprocess
import sys

import pytest

from phyllome_installer.cli import build_install_parser, install_main
from phyllome_installer.cli_run import parse


def run_cli(*args: str, prog: str = "phyllome-install") -> subprocess.CompletedProcess:
    entry = "install_main" if prog == "phyllome-install" else "firstboot_main"
    code = f"import sys; from phyllome_installer.cli import {entry}; sys.exit({entry}())"
    return subprocess.run([sys.executable, "-c", code, *args], check=False, capture_output=True, text=True, timeout=60)


def test_unknown_subcommand_is_a_usage_error_not_a_traceback(tmp_path):
    out = run_cli("frobnicate", "--log", str(tmp_path / "log"))
    assert out.returncode == 2
    assert "invalid choice: 'frobnicate'" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_unwritable_log_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = run_cli("schema", "--log", str(blocker / "sub" / "log"))
    assert out.returncode == 2 and "cannot write the install log" in out.stderr
    assert "Traceback" not in out.stderr


def test_options_are_accepted_before_and_after_the_subcommand(tmp_path):
    parser = build_install_parser()
    a = parse(parser, ["--sandbox", "install", "--dry-run"])
    b = parse(parser, ["install", "--sandbox", "--dry-run"])
    c = parse(parser, ["install"])
    assert a.sandbox and b.sandbox and a.dry_run and b.dry_run
    assert (c.sandbox, c.log, c.answers, c.json_progress) == (False, None, None, False)
    assert parse(parser, []).handler.__name__ == "cmd_tui"


def test_internal_errors_point_to_the_log_without_a_traceback(tmp_path, monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("bug")

    parser = build_install_parser()
    monkeypatch.setattr("phyllome_installer.cli.build_install_parser", lambda: parser)
    parser.set_defaults(handler=broken)
    log = tmp_path / "log"
    assert install_main(["--log", str(log)]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: bug" in err and str(log) in err and "Traceback" not in err
    assert "Traceback" in log.read_text()


@pytest.mark.parametrize("prog", ["phyllome-install", "phyllome-firstboot"])
def test_help_works(prog):
    out = run_cli("--help", prog=prog)
    assert out.returncode == 0 and prog in out.stdout


def test_a_failing_reboot_after_a_finished_install_is_said_and_not_a_failure():
    """[post] action runs after the install succeeded and its recovery code was shown: a systemctl that fails
    leaves an installed machine, so it is a message naming what to do by hand, never an error (exit 0)."""
    from phyllome_installer.core.runner import RecordingRunner
    from phyllome_installer.frontend import after_install

    runner = RecordingRunner()
    assert after_install(runner, "reboot") is None and runner.calls[-1].argv == ("systemctl", "reboot")
    assert after_install(runner, "none") is None and len(runner.calls) == 1
    runner.fail(("systemctl",), stderr="Failed to connect to bus: No such file or directory")
    problem = after_install(runner, "poweroff")
    assert problem is not None and problem.startswith("Phyllome OS is installed, but the power off failed (")
    assert problem.endswith("power off by hand"), problem


def test_each_program_says_what_its_sandbox_is_in_every_sub_command():
    from phyllome_installer.cli import build_firstboot_parser

    def sandbox_help(parser) -> set[str]:
        found = {a.help for a in parser._actions if "--sandbox" in a.option_strings}
        for action in parser._actions:
            for sub in getattr(action, "choices", None) or {}:
                if isinstance(action.choices, dict):
                    found |= sandbox_help(action.choices[sub])
        return found

    assert sandbox_help(build_install_parser()) == {"target the safe sandbox disk image instead of a real disk"}
    (firstboot,) = sandbox_help(build_firstboot_parser())
    assert "disk image" not in firstboot and "loop image" in firstboot


@pytest.mark.parametrize("prog, args", [("phyllome-install", ()), ("phyllome-install", ("--sandbox",)),
                                        ("phyllome-firstboot", ("--sandbox",))])
def test_the_screens_without_a_terminal_are_refused_not_left_waiting_for_keys(tmp_path, prog, args):
    """Started with no terminal (a pipe, /dev/null: a unit without a TTY, ssh without -t), the screens waited
    forever for keys at full CPU, holding the install lock. Refused now, before anything is set up (the 60 s
    subprocess deadline is the hang's detector, not a timing)."""
    entry = "install_main" if prog == "phyllome-install" else "firstboot_main"
    code = f"import sys; from phyllome_installer.cli import {entry}; sys.exit({entry}())"
    out = subprocess.run([sys.executable, "-c", code, *args, "--sandbox-dir", str(tmp_path / "box"), "--log",
                          str(tmp_path / "log")], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 2, out.stderr
    assert "the screens need a terminal" in out.stderr and "unattended" in out.stderr
    assert not (tmp_path / "box").exists()  # no sandbox image made
