"""The install log: DEBUG and above to one file, INFO and above to the console sink, secrets masked in both.

The log holds one run: it is emptied when a run opens it. By default it lives in a root-only directory,
``/var/log/phyllome/`` (mode 0700), one file per command (``install.log``, ``probe.log``, ...), so that a
``probe`` in another terminal never empties the log of a running install. The file is opened without following a
symbolic link, and only when it is a regular file with one link: ``--log`` pointing at ``/etc/shadow`` through a
symlink or a hard link is refused, never truncated and never copied into the target.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError
from .secrets import REDACTOR, RedactingFilter, Redactor

if TYPE_CHECKING:
    from .sinks import Sink

LOG_DIR = Path("/var/log/phyllome")
DEFAULT_LOG = LOG_DIR / "install.log"
LOGGER_NAME = "phyllome"
FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class SinkHandler(logging.Handler):
    """Forwards log records to a progress sink as :class:`LogLine` events."""

    def __init__(self, sink: Sink, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from .progress import LogLine  # the event classes: once a record reaches the console (INFO and up)

            self.sink.emit(LogLine(self.format(record), level=record.levelname))
        except Exception:  # a broken front end must never break the install
            self.handleError(record)


@dataclass
class InstallLog:
    path: Path
    handlers: list[logging.Handler]

    def close(self) -> None:
        logger = logging.getLogger(LOGGER_NAME)
        for handler in self.handlers:
            logger.removeHandler(handler)
            handler.close()


def _is_log(path: Path) -> bool:
    try:
        with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW | os.O_NONBLOCK)) as handle:
            return bool(_LOG_START.match(handle.read(32)))
    except OSError:
        return False


class _FileHandler(logging.StreamHandler):
    """A log file opened by :func:`open_log` (never reopened by name), flushed after every record.

    When the file cannot be written (its filesystem is full, the disk went away), the run goes on: the failure is
    said once on the console, the rest of the run is not logged, and closing never fails the command."""

    broken = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.broken:
            return
        try:
            self.stream.write(self.format(record) + self.terminator)
            self.stream.flush()
        except OSError as exc:
            self.broken = True
            logging.getLogger(LOGGER_NAME).warning(
                "the log file can no longer be written (%s): the rest of this run is not logged", exc.strerror)

    def flush(self) -> None:
        if not self.broken:
            try:
                super().flush()
            except OSError:
                self.broken = True

    def close(self) -> None:
        try:
            self.flush()
            self.stream.close()
        except OSError:
            pass  # what could not be written is lost either way; the command's result stands
        finally:
            logging.Handler.close(self)


def _private_dir(directory: Path) -> None:
    """The default log directory: a real directory (never a symlink), only root's."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise OSError(0, f"{directory} is not a directory")
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(directory, 0o700)


#: What the first line of a log this program wrote looks like (FILE_FORMAT's asctime).
_LOG_START = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
_PSEUDO = ("/proc/", "/sys/", "/dev/")


def open_log(path: Path) -> int:
    """Open ``path`` for one run's log: not through a symlink, only a regular file with one link, emptied.

    An existing file is emptied only when it is a log this program wrote (or empty): ``--log answers.toml`` must
    not destroy the answer file. Files of /proc, /sys and /dev (kernel settings, devices) are refused, except
    /dev/null, which means no log.
    """
    real = os.path.realpath(path)
    if real != "/dev/null" and real.startswith(_PSEUDO):
        raise OSError(0, "a file of /proc, /sys or /dev is not a log")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    try:
        info = os.fstat(fd)
        if stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(1, 3):  # /dev/null: no log, on purpose
            os.set_blocking(fd, True)
            return fd
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file")
        if info.st_nlink != 1:
            raise OSError(0, "it has other hard links; refused")
        if info.st_size and not _is_log(path):
            raise OSError(0, "it exists and is not a log of this program; refused (it would be overwritten)")
        os.ftruncate(fd, 0)
        os.fchmod(fd, 0o600)
        os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise


def setup_logging(path: Path | None, sink: Sink | None, *, redactor: Redactor = REDACTOR,
                  console_level: int = logging.INFO, default: Path = DEFAULT_LOG) -> InstallLog:
    """Attach the log file (mode 0600, this run only) and the console sink to the ``phyllome`` logger."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handlers: list[logging.Handler] = []
    log_path = Path(path) if path is not None else default
    try:
        if path is None:
            _private_dir(log_path.parent)
        else:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = open_log(log_path)
        file_handler: logging.Handler = _FileHandler(os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace"))
    except OSError as exc:
        reason = "it is a symbolic link; refused" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
        raise UserError(f"cannot write the install log {log_path}: {reason}",
                        hint="choose another place with --log PATH") from None
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
    handlers.append(file_handler)
    if sink is not None:
        handlers.append(SinkHandler(sink, console_level))
    for handler in handlers:
        handler.addFilter(RedactingFilter(redactor))
        logger.addHandler(handler)
    return InstallLog(log_path, handlers)
