"""Secret redaction: every registered secret value is replaced in every log line and error message.

Secrets reach commands only on stdin (see :mod:`runner`); this module is the second line of defence, for
the case where a tool echoes its input or an error message quotes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

MASK = "[REDACTED]"


class Redactor:
    """A thread-safe set of secret strings to mask."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Register a secret. Empty values are ignored (masking "" would mask everything)."""
        if secret:
            with self._lock:
                self._secrets.add(secret)
                # Tools may print the value without its trailing newline or whitespace.
                if secret.strip() and secret.strip() != secret:
                    self._secrets.add(secret.strip())

    def __len__(self) -> int:
        return len(self._secrets)

    def carries(self, arg: str) -> bool:
        """Whether a command-line argument passes a secret: the secret itself, or after ``=`` or ``:`` (the ways
        a secret is put on a command line by mistake). A secret that merely occurs inside another value (a
        passphrase "phyllome" in a path /var/log/phyllome) is not one: the answer file's rules refuse secrets that
        are part of its other values, and a guard that fired on them failed valid installs."""
        with self._lock:
            secrets = tuple(self._secrets)
        return any(arg == secret or arg.endswith(("=" + secret, ":" + secret)) for secret in secrets)

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


#: The process-wide redactor. Anything that learns a secret registers it here as soon as it is read.
REDACTOR = Redactor()


class RedactingFilter(logging.Filter):
    """A logging filter for handlers: formats the record's message, then masks every secret in it."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.redactor.redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        return True
