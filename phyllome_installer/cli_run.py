"""Running a parsed command line of ``phyllome-install`` or ``phyllome-firstboot``: the install lock, the log, the
console's progress sink, signals, and every error turned into its exit code and one line for the user.
cli.py builds the parsers and the handlers; this runs them."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .core.errors import EXIT_FAILED, EXIT_INTERRUPTED, PhyllomeError, UserError
from .core.interrupt import Stop, deferred, signals_stop
from .core.lock import InstallLock
from .core.logs import LOG_DIR, setup_logging
from .core.secrets import REDACTOR
from .core.sinks import JsonLinesSink, Sink, TextSink

log = logging.getLogger("phyllome.cli")

Handler = Callable[[argparse.Namespace], int]

#: The options every sub-command accepts, filled in after parsing (argparse shares their actions).
COMMON_DEFAULTS = {"log": None, "json_progress": False, "sandbox": False, "answers": None, "sandbox_dir": None}


def interruptible(handler: Handler) -> Handler:
    """SIGTERM, SIGINT and SIGHUP wait for the step in progress (seconds), then end the command (exit 130):
    never in the middle of a libvirt call, so nothing is left half-defined."""
    handler.interruptible = True  # type: ignore[attr-defined]
    return handler


def require_terminal(instead: str, stdin=None, stderr=None) -> None:  # type: ignore[no-untyped-def]
    """The screens read keys from standard input and draw on standard error (Textual's driver). Without a terminal
    on both they would wait for keys that never come, at full CPU on an empty input, holding the install lock."""
    for stream in (sys.stdin if stdin is None else stdin, sys.__stderr__ if stderr is None else stderr):
        try:
            ok = stream is not None and stream.isatty()
        except (OSError, ValueError):  # closed
            ok = False
        if not ok:
            raise UserError(f"the screens need a terminal, and standard input or error is not one: {instead}")


def console_sink(args: argparse.Namespace) -> Sink | None:
    if getattr(args.handler, "owns_terminal", False):
        return None  # the screen belongs to the TUI; the log file still gets everything
    return JsonLinesSink(sys.stdout) if args.json_progress else TextSink(sys.stderr)


def _log_name(prog: str, args: argparse.Namespace) -> str:
    """One log file per command, so a probe never empties a running install's log: install.log, probe.log, ..."""
    name = args.handler.__name__.removeprefix("cmd_") if hasattr(args.handler, "__name__") else "main"
    name = "install" if name == "tui" else name
    return f"{name}.log" if prog == "phyllome-install" else f"firstboot-{name}.log"


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    for name, default in COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    return args


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parse(parser, argv)
    prog = parser.prog
    args.stop = Stop()
    if getattr(args, "dry_run", False) and args.log is None:
        args.log = Path("/dev/null")  # a dry run writes nothing anywhere, not even a log
    lock = None
    if getattr(args.handler, "needs_lock", False) and not getattr(args, "dry_run", False):
        # Before the log is opened (a refused second install must not empty the running one's log) and before
        # anything is read from a disk.
        try:
            lock = InstallLock().acquire(" ".join([prog, *(sys.argv[1:] if argv is None else argv)]))
        except UserError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return exc.exit_code
        except OSError as exc:
            print(f"{prog}: error: cannot take the install lock: {exc.strerror}", file=sys.stderr)
            return EXIT_FAILED
    try:
        install_log = setup_logging(args.log, console_sink(args), default=LOG_DIR / _log_name(prog, args))
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        if lock is not None:
            lock.release()
        return exc.exit_code
    args.log = install_log.path
    log.debug("%s %s: %s", prog, __version__, " ".join(sys.argv[1:] if argv is None else argv))
    try:
        if lock is not None:
            with signals_stop(args.stop):
                return args.handler(args)
        if getattr(args.handler, "interruptible", False):
            with deferred():
                return args.handler(args)
        return args.handler(args)
    except PhyllomeError as exc:
        log.debug("%s: %s", type(exc).__name__, exc)
        print(f"{prog}: error: {REDACTOR.redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: keep the traceback in the log, show the user where it is
        log.debug("internal error", exc_info=True)
        print(f"{prog}: internal error: {type(exc).__name__}: {REDACTOR.redact(str(exc))}\n"
              f"  the details are in {install_log.path}; please attach that file to a bug report",
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        install_log.close()
        if lock is not None:
            lock.release()
