"""The install log: DEBUG and above to one file, INFO and above to the console sink, secrets masked in both."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .progress import LogLine, Sink
from .secrets import REDACTOR, RedactingFilter, Redactor

DEFAULT_LOG = Path("/tmp/phyllome-install.log")
LOGGER_NAME = "phyllome"
FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class SinkHandler(logging.Handler):
    """Forwards log records to a progress sink as :class:`LogLine` events."""

    def __init__(self, sink: Sink, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
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


def setup_logging(path: Path | None, sink: Sink | None, *, redactor: Redactor = REDACTOR,
                  console_level: int = logging.INFO) -> InstallLog:
    """Attach the install log file (mode 0600, appended) and the console sink to the ``phyllome`` logger."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handlers: list[logging.Handler] = []
    log_path = Path(path) if path is not None else DEFAULT_LOG
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        file_handler = logging.FileHandler(log_path, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write the install log {log_path}: {exc.strerror}",
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
