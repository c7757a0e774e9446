"""Interruption: SIGTERM, SIGINT and SIGHUP stop an install at the next safe point, never in the middle of a
cleanup.

The signal handler only sets a :class:`Stop` flag. The engine checks it between tasks; the subprocess runner
checks it before starting a command and, while one runs, terminates it (its process group) so that the install
does not go on for minutes. Everything the install mounted is then unmounted, the fuse helpers stop with their
mounts, loop devices are released, and "interrupted in task X" is logged. Cleanup runs inside
:meth:`Stop.shielded`, where the flag is not looked at.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

from .errors import EXIT_INTERRUPTED, InstallFailure

log = logging.getLogger("phyllome.interrupt")

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Interrupted(InstallFailure):
    exit_code = EXIT_INTERRUPTED


class Stop:
    """Set once by a signal (or a front end's quit); read by the engine and the runner."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._shield = threading.local()
        self.reason = ""
        self._announced = False

    def request(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def requested(self) -> bool:
        """Whether to stop now: set, and not inside a shielded cleanup of this thread."""
        if self._event.is_set() and not self._announced:
            self._announced = True
            log.warning("%s received: stopping at the next safe point, then cleaning up", self.reason)
        return self._event.is_set() and not getattr(self._shield, "depth", 0)

    def check(self) -> None:
        if self.requested:
            raise Interrupted(f"interrupted ({self.reason})")

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """Cleanup that must run to its end, even after a stop was requested."""
        self._shield.depth = getattr(self._shield, "depth", 0) + 1
        try:
            yield
        finally:
            self._shield.depth -= 1


@contextlib.contextmanager
def deferred(signals: tuple[signal.Signals, ...] = SIGNALS) -> Iterator[None]:
    """Hold these signals until the block ends (a few seconds of work that must not be cut in half, such as
    defining a VM and taking it back); a signal that came meanwhile then ends the command as Ctrl+C would.

    The handler only notes the signal: raising from it in the middle of a C library call (libvirt) would leave
    that call with an exception set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: caught.append(signum)) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if caught:
        log.warning("%s received: stopped after finishing the step in progress", signal.Signals(caught[0]).name)
        raise KeyboardInterrupt


@contextlib.contextmanager
def signals_stop(stop: Stop, signals: tuple[signal.Signals, ...] = SIGNALS) -> Iterator[Stop]:
    """While the block runs, these signals request a stop instead of killing the process (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, _frame: object) -> None:
        # Only a flag: logging here could re-enter a stream the interrupted code was writing to (the log says it
        # when the engine or the runner sees the request).
        stop.request(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
