from __future__ import annotations

import io
import os
import time

import pytest

from phyllome_installer.core.errors import CommandError
from phyllome_installer.core.runner import DryRunRunner, RecordingRunner, SubprocessRunner


def test_subprocess_runner_captures_stdout_stderr_and_exit_code(install_log, redactor):
    runner = SubprocessRunner(redactor)
    result = runner.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    text = install_log[0].path.read_text()
    assert "$ sh -c 'echo out; echo err >&2; exit 3'" in text
    assert "out| out" in text and "err| err" in text and "exit 3" in text


def test_check_raises_with_the_output_tail(install_log, redactor):
    runner = SubprocessRunner(redactor)
    with pytest.raises(CommandError) as info:
        runner.run(["sh", "-c", "seq 1 50 >&2; exit 4"])
    err = info.value
    assert err.returncode == 4
    assert err.output_tail.splitlines() == [str(n) for n in range(31, 51)]


def test_missing_program_is_a_clean_failure(install_log, redactor):
    result = SubprocessRunner(redactor).run(["/nonexistent/tool"], check=False)
    assert result.returncode == 127 and "cannot run /nonexistent/tool" in result.stderr


def test_timeout_kills_the_command(install_log, redactor):
    result = SubprocessRunner(redactor).run(["sleep", "30"], check=False, timeout=0.3)
    assert result.returncode == 124


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("timeout", [None, 0.5], ids=["ended", "timed-out"])
def test_a_daemon_holding_the_output_open_is_not_waited_for(install_log, redactor, tmp_path, timeout):
    """A command whose child left its session (setsid) with stdout open: the run ends while that child lives, with
    the output read until then, and says so in the log; what the child writes later is dropped, never passed on
    (before, the reads waited for the child: here 60 s)."""
    pidfile = tmp_path / "daemon.pid"
    script = (f"setsid sh -c 'echo $$ > {pidfile}; sleep 1; echo late; exec sleep 60' & "
              f"while [ ! -s {pidfile} ]; do sleep 0.05; done; echo started; sleep {30 if timeout else 0}")
    lines = []
    try:
        result = SubprocessRunner(redactor, after_exit=0.3).run(
            ["sh", "-c", script], check=False, timeout=timeout, on_line=lambda line, _: lines.append(line))
        daemon = int(pidfile.read_text())
        assert _alive(daemon), "the run waited for the child to end"
        time.sleep(1.5)  # the child's late line is written meanwhile, after the run returned
    finally:
        if pidfile.exists() and _alive(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), 9)
    assert result.returncode == (124 if timeout else 0)
    assert result.stdout == "started\n" and lines == ["started"]
    assert "its output is no longer waited for (a process it started keeps it open)" in \
        install_log[0].path.read_text()


def test_lines_are_streamed_to_the_callback(install_log, redactor):
    seen = []
    SubprocessRunner(redactor).run(["printf", "a\\nb\\n"], on_line=lambda line, stream: seen.append(line))
    assert seen == ["a", "b"]


def test_secret_echoed_by_a_command_is_redacted_everywhere(install_log, redactor):
    handle, sink = install_log
    secret = "canary-Zq8-passphrase"
    redactor.add(secret)
    streamed = []
    runner = SubprocessRunner(redactor)
    result = runner.run(["cat"], stdin=secret + "\n", on_line=lambda line, _: streamed.append(line))
    assert result.stdout == secret + "\n"  # the caller still gets the real output
    assert secret not in handle.path.read_text()
    assert "[REDACTED]" in handle.path.read_text()
    assert all(secret not in getattr(e, "line", "") for e in sink.events)
    assert streamed == ["[REDACTED]"]
    with pytest.raises(CommandError) as info:
        runner.run(["sh", "-c", "cat >&2; exit 1"], stdin=secret)
    assert secret not in str(info.value)


def test_a_secret_on_argv_is_refused_before_running(tmp_path, redactor):
    redactor.add("hunter2-secret")
    marker = tmp_path / "ran"
    with pytest.raises(ValueError, match="secret on the command line"):
        SubprocessRunner(redactor).run(["touch", str(marker), "hunter2-secret"])
    assert not marker.exists()


@pytest.mark.parametrize("arg", ["hunter2-secret", "--passphrase=hunter2-secret", "admin:hunter2-secret"])
def test_every_way_of_passing_a_secret_on_argv_is_refused(tmp_path, redactor, arg):
    redactor.add("hunter2-secret")
    with pytest.raises(ValueError, match="secret on the command line"):
        SubprocessRunner(redactor).run(["true", arg])


def test_a_secret_that_merely_occurs_inside_another_argument_runs(tmp_path, redactor):
    """passphrase "phyllome" and the path /var/log/phyllome/x: the guard fired on it and failed valid installs."""
    redactor.add("phyllome")
    directory = tmp_path / "phyllome" / "sub"
    SubprocessRunner(redactor).run(["mkdir", "-p", str(directory)])
    assert directory.is_dir()


def test_a_string_command_is_refused(redactor):
    with pytest.raises(TypeError):
        SubprocessRunner(redactor).run("echo hi")  # type: ignore[arg-type]


def test_dry_run_runs_nothing(tmp_path, redactor):
    out = io.StringIO()
    marker = tmp_path / "created"
    runner = DryRunRunner(out, redactor)
    result = runner.run(["touch", str(marker)])
    runner.run(["chpasswd", "--root", "/mnt"], stdin="admin:pw")
    assert result.ok and not marker.exists()
    assert out.getvalue().splitlines() == [f"would run: touch {marker}",
                                           "would run: chpasswd --root /mnt  < stdin not shown"]
    assert "admin:pw" not in out.getvalue()
    assert [c.argv[0] for c in runner.calls] == ["touch", "chpasswd"]


def test_recording_runner_scripts_answers_and_faults(redactor):
    runner = RecordingRunner(redactor=redactor)
    runner.respond(["blkid"], stdout="UUID=1234\n")
    runner.fail(["mkfs.f2fs"], returncode=5, times=1)
    assert runner.run(["blkid", "/dev/x"]).stdout == "UUID=1234\n"
    with pytest.raises(CommandError) as info:
        runner.run(["mkfs.f2fs", "/dev/x"])
    assert info.value.returncode == 5
    assert runner.run(["mkfs.f2fs", "/dev/x"]).ok  # the fault fired once
    assert runner.run(["anything"]).stdout == ""
    assert runner.argvs == [("blkid", "/dev/x"), ("mkfs.f2fs", "/dev/x"), ("mkfs.f2fs", "/dev/x"), ("anything",)]


def test_recording_runner_delegates_unscripted_calls(tmp_path, redactor):
    runner = RecordingRunner(delegate=SubprocessRunner(redactor), redactor=redactor)
    runner.fail(["false-on-purpose"])
    target = tmp_path / "real"
    runner.run(["touch", str(target)])
    assert target.exists()
    assert not runner.run(["false-on-purpose"], check=False).ok


def test_log_file_is_private(install_log):
    assert oct(os.stat(install_log[0].path).st_mode & 0o777) == "0o600"


def test_secret_output_is_returned_but_never_logged(install_log, redactor):
    handle, _ = install_log
    seen = []
    result = SubprocessRunner(redactor).run(["cat"], stdin="$6$hash-value\n", secret_output=True,
                                            on_line=lambda line, _: seen.append(line))
    assert result.stdout == "$6$hash-value\n" and seen == []
    text = handle.path.read_text()
    assert "hash-value" not in text and "(14 characters, not logged)" in text


def test_a_stopped_command_is_named_for_a_person_never_by_its_path(tmp_path):
    """Issue 21: "interrupted (quit) while running /home/.../.venv/bin/python -m storage.blivet_worker" showed the
    checkout's path. The message names the program (or the module); the whole command line stays in the log."""
    import sys
    import threading

    from phyllome_installer.core.interrupt import Interrupted, Stop
    from phyllome_installer.core.runner import SubprocessRunner, program

    stop = Stop()
    runner = SubprocessRunner(stop=stop)
    threading.Timer(0.5, stop.request, args=("quit",)).start()
    with pytest.raises(Interrupted) as caught:
        runner.run([sys.executable, "-I", "-c", "import time; time.sleep(60)"])
    message = str(caught.value)
    assert message.startswith("interrupted (quit) while running python") and "/" not in message
    assert program([sys.executable, "-I", "-m", "storage.blivet_worker"]) == "storage.blivet_worker"
    assert program(["/usr/sbin/mkfs.f2fs", "-f", "/dev/loop0"]) == "mkfs.f2fs"
    assert program([str(tmp_path / "odd dir" / "tool")]) == "tool"
