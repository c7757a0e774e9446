"""Run commands: argv lists only, never a shell string.

Three runners share one small protocol so that every side effect can be swapped without patching:

* :class:`SubprocessRunner` runs for real, streaming each output line to the install log as it comes;
* :class:`DryRunRunner` records and prints what would run, and runs nothing;
* :class:`RecordingRunner` records every call and answers from a script (tests, fault injection); it can
  pass unscripted calls on to another runner.

Secrets travel only on stdin. stdin is never logged (only its size), a registered secret found in an argv
is refused before anything runs, and every logged line and error message goes through the redactor.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from .errors import CommandError
from .interrupt import Interrupted, Stop
from .secrets import REDACTOR, Redactor

log = logging.getLogger("phyllome.run")

#: Called with each output line (without newline) and the stream name, "stdout" or "stderr".
LineCallback = Callable[[str, str], None]

OUTPUT_TAIL_LINES = 20
AFTER_EXIT = 10.0
"""Seconds a command's output is still read after it ended, and a killed command is waited for."""


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class Call:
    """One recorded command."""

    argv: tuple[str, ...]
    stdin: str | None = None
    env: Mapping[str, str] | None = None
    cwd: str | None = None


class Runner(Protocol):
    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
        secret_output: bool = False,
    ) -> CommandResult: ...


def display(argv: Sequence[str], redactor: Redactor = REDACTOR) -> str:
    """The command as a user would type it, with secrets masked."""
    return redactor.redact(shlex.join(argv))


def program(argv: Sequence[str]) -> str:
    """What a command is, for a person: its program's name (``mkfs.f2fs``), or the module for ``python -m MOD``;
    never the directory it was run from (a checkout's path says nothing a person can act on)."""
    name = os.path.basename(str(argv[0])) if argv else "a command"
    if name.startswith("python") and "-m" in argv[1:-1]:
        return str(argv[list(argv).index("-m") + 1])
    return name


def _validated(argv: Sequence[str], redactor: Redactor) -> tuple[str, ...]:
    if isinstance(argv, str | bytes):
        raise TypeError("a command is an argv list, not a string")
    if not argv:
        raise ValueError("empty command")
    args = tuple(str(a) for a in argv)
    if any(redactor.carries(arg) for arg in args):
        # Never run it: the secret would be visible in the process list.
        raise ValueError(f"refusing to pass a secret on the command line: {display(args, redactor)}")
    return args


def _tail(result: CommandResult) -> str:
    text = result.stderr if result.stderr.strip() else result.stdout
    return "\n".join(text.rstrip("\n").splitlines()[-OUTPUT_TAIL_LINES:])


class _LoggingRunner:
    """What every runner shares: argv validation, logging, and check=True semantics."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        self.redactor = redactor

    def _begin(self, argv: Sequence[str], stdin: str | None, cwd: str | None) -> tuple[str, ...]:
        args = _validated(argv, self.redactor)
        suffix = f"  (stdin: {len(stdin)} characters, not logged)" if stdin is not None else ""
        where = f"  (in {cwd})" if cwd else ""
        log.debug("$ %s%s%s", display(args, self.redactor), suffix, where)
        return args

    def _finish(self, result: CommandResult, check: bool) -> CommandResult:
        # A failure the caller asked to handle itself (check=False) is expected: keep it out of the console.
        level = logging.WARNING if check and not result.ok else logging.DEBUG
        log.log(level, "exit %d: %s", result.returncode, display(result.argv, self.redactor))
        if check and not result.ok:
            raise CommandError(
                display(result.argv, self.redactor), result.returncode, self.redactor.redact(_tail(result))
            )
        return result


class SubprocessRunner(_LoggingRunner):
    """Runs commands for real. Output is streamed line by line to the log and to ``on_line``.

    ``stop``: when a stop is requested (a signal), no new command starts, and the running one is terminated (its
    whole process group: SIGTERM, then SIGKILL after :data:`TERMINATE_GRACE` seconds); :class:`Interrupted` is
    raised. Commands run inside ``stop.shielded()`` (cleanup) are neither refused nor terminated.

    Every wait is bounded once the command ended or was killed: a process it started in another session (a
    daemon) may keep its output open, and a process stuck in the kernel (a hung device, a vCPU that never leaves
    the hypervisor) survives SIGKILL. After ``after_exit`` seconds such output is no longer waited for, and such a
    process is left behind, said in the log: the caller goes on.
    """

    def __init__(self, redactor: Redactor = REDACTOR, *, base_env: Mapping[str, str] | None = None,
                 stop: Stop | None = None, after_exit: float = AFTER_EXIT) -> None:
        super().__init__(redactor)
        self.base_env = dict(base_env) if base_env is not None else None
        self.stop = stop
        self.after_exit = after_exit

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
        secret_output: bool = False,
    ) -> CommandResult:
        """Run ``argv``. ``secret_output``: its stdout (a hash, a key) is neither logged nor streamed."""
        if self.stop is not None:
            self.stop.check()
        args = self._begin(argv, stdin, cwd)
        full_env = dict(self.base_env if self.base_env is not None else os.environ)
        full_env.setdefault("LC_ALL", "C.UTF-8")
        if env:
            full_env.update(env)
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=full_env,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            result = CommandResult(args, 127, "", f"cannot run {args[0]}: {exc.strerror}")
            return self._finish(result, check)
        buffers: dict[str, list[str]] = {"stdout": [], "stderr": []}
        detached = threading.Event()
        """Set when the run stops waiting for its output: what still comes is read (a writer never blocks on a full
        pipe) and dropped, never logged or passed on after the run returned."""
        readers = [
            threading.Thread(target=self._pump, daemon=True,
                             args=(stream, name, buffers[name], None if secret_output and name == "stdout" else on_line,
                                   secret_output and name == "stdout", detached))
            for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))
        ]
        for reader in readers:
            reader.start()
        if stdin is not None:
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        returncode, stopped = self._wait(proc, timeout, buffers["stderr"])
        deadline = time.monotonic() + self.after_exit
        for reader in readers:
            reader.join(timeout=max(deadline - time.monotonic(), 0))
        if any(reader.is_alive() for reader in readers):
            detached.set()
            holder = "it is still running" if proc.poll() is None else "a process it started keeps it open"
            log.warning("%s: its output is no longer waited for (%s)", program(args), holder)
        output = {name: "".join(buffer) for name, buffer in buffers.items()}
        if stopped:
            log.warning("terminated: %s", display(args, self.redactor))
            raise Interrupted(f"interrupted ({self.stop.reason if self.stop else 'stop'}) while running "
                              f"{program(args)}")  # the whole command line is in the log, above
        result = CommandResult(args, returncode, output["stdout"], output["stderr"])
        if secret_output:
            log.debug("  out| (%d characters, not logged)", len(result.stdout))
        return self._finish(result, check)

    def _wait(self, proc: subprocess.Popen, timeout: float | None, stderr: list[str]) -> tuple[int, bool]:
        """The exit code, and whether the command was terminated because a stop was requested."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 0.2 if self.stop is not None else None
            if deadline is not None:
                left = max(deadline - time.monotonic(), 0)
                step = left if step is None else min(step, left)
            try:
                return proc.wait(timeout=step), False
            except subprocess.TimeoutExpired:
                pass
            if self.stop is not None and self.stop.requested:
                _terminate(proc)
                return self._reap(proc), True
            if deadline is not None and time.monotonic() >= deadline:
                _terminate(proc, grace=0)
                stderr.append(f"timed out after {timeout} s\n")
                self._reap(proc)
                return 124, False

    def _reap(self, proc: subprocess.Popen) -> int:
        """The exit code of a killed command; -9 when it survives SIGKILL for ``after_exit`` s (left behind)."""
        try:
            return proc.wait(timeout=self.after_exit)
        except subprocess.TimeoutExpired:
            log.warning("process %d survived SIGKILL for %g s (stuck in the kernel): left behind", proc.pid,
                        self.after_exit)
            return -signal.SIGKILL

    def _pump(self, stream: TextIO, name: str, buffer: list[str], on_line: LineCallback | None,
              hidden: bool, detached: threading.Event) -> None:
        for line in stream:
            if detached.is_set():
                continue
            buffer.append(line)
            if hidden:
                continue
            text = line.rstrip("\n")
            log.debug("  %s| %s", "out" if name == "stdout" else "err", text)
            if on_line is not None:
                on_line(self.redactor.redact(text), name)
        stream.close()


TERMINATE_GRACE = 5.0


def _terminate(proc: subprocess.Popen, grace: float = TERMINATE_GRACE) -> None:
    """SIGTERM to the command's process group (it runs in its own session), then SIGKILL if it is still there
    after ``grace`` seconds (at once when 0). The caller reaps it (:meth:`SubprocessRunner._reap`, bounded)."""
    if grace:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class DryRunRunner(_LoggingRunner):
    """Prints and records each command; runs nothing and reports success with empty output.

    ``lines`` keeps what was shown ("would run: ...", and the notes of :meth:`note`, such as the writes of a dry
    :class:`~.targetfs.TargetFiles`), in order. A command whose output is secret answers ``<secret output>``, so
    that what follows it (chpasswd after openssl) is shown too.
    """

    SECRET_OUTPUT = "<secret output>"

    def __init__(self, stream: TextIO | None = None, redactor: Redactor = REDACTOR, *, echo: bool = True) -> None:
        super().__init__(redactor)
        self.stream = stream
        self.echo = echo
        self.calls: list[Call] = []
        self.lines: list[str] = []

    def note(self, what: str) -> None:
        self._show(f"would {self.redactor.redact(what)}")

    def _show(self, line: str) -> None:
        self.lines.append(line)
        if self.echo:
            print(line, file=self.stream or sys.stdout)

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
        secret_output: bool = False,
    ) -> CommandResult:
        args = _validated(argv, self.redactor)
        self.calls.append(Call(args, stdin, env, cwd))
        note = "  < stdin not shown" if stdin is not None else ""
        self._show(f"would run: {display(args, self.redactor)}{note}")
        return CommandResult(args, 0, self.SECRET_OUTPUT if secret_output else "")

    def asking(self, real: Runner) -> Runner:
        """A runner for read-only questions (``ostree ls``): shown like every command, and run for real by
        ``real``, so that a dry run refuses what the install would refuse."""
        dry = self

        class Asking:
            def run(self, argv: Sequence[str], **kwargs) -> CommandResult:
                dry.run(argv, stdin=kwargs.get("stdin"), env=kwargs.get("env"), cwd=kwargs.get("cwd"))
                return real.run(argv, **kwargs)

        return Asking()


@dataclass
class Rule:
    """A scripted answer for every command whose argv starts with ``prefix``."""

    prefix: tuple[str, ...]
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""
    times: int | None = None  # None: forever
    hits: int = field(default=0, init=False)

    def matches(self, argv: tuple[str, ...]) -> bool:
        live = self.times is None or self.hits < self.times
        return live and argv[: len(self.prefix)] == self.prefix


class RecordingRunner(_LoggingRunner):
    """Records every call. Answers from scripted rules; other calls go to ``delegate`` or succeed empty.

    ``RecordingRunner(delegate=SubprocessRunner())`` with ``fail(("mkfs.f2fs",))`` is a fault injector.
    """

    def __init__(self, delegate: Runner | None = None, redactor: Redactor = REDACTOR) -> None:
        super().__init__(redactor)
        self.delegate = delegate
        self.calls: list[Call] = []
        self.rules: list[Rule] = []

    def respond(self, prefix: Sequence[str], *, stdout: str = "", stderr: str = "", returncode: int = 0,
                times: int | None = None) -> Rule:
        rule = Rule(tuple(prefix), returncode, stdout, stderr, times)
        self.rules.insert(0, rule)  # the newest rule wins
        return rule

    def fail(self, prefix: Sequence[str], *, returncode: int = 1, stderr: str = "injected failure",
             times: int | None = None) -> Rule:
        return self.respond(prefix, returncode=returncode, stderr=stderr, times=times)

    @property
    def argvs(self) -> list[tuple[str, ...]]:
        return [call.argv for call in self.calls]

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
        secret_output: bool = False,
    ) -> CommandResult:
        args = _validated(argv, self.redactor)
        self.calls.append(Call(args, stdin, env, cwd))
        for rule in self.rules:
            if rule.matches(args):
                rule.hits += 1
                self._begin(args, stdin, cwd)
                for line in ([] if secret_output else rule.stdout.splitlines()):
                    log.debug("  out| %s", line)
                    if on_line is not None:
                        on_line(self.redactor.redact(line), "stdout")
                return self._finish(CommandResult(args, rule.returncode, rule.stdout, rule.stderr), check)
        if self.delegate is not None:
            return self.delegate.run(args, stdin=stdin, check=check, env=env, cwd=cwd, timeout=timeout,
                                     on_line=on_line, secret_output=secret_output)
        self._begin(args, stdin, cwd)
        return self._finish(CommandResult(args, 0), check)
