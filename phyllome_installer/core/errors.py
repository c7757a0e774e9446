"""Two kinds of errors, each with a message a user can act on.

* :class:`UserError`: the input is wrong or the target is unsafe. Nothing was touched; exit code 2.
* :class:`InstallFailure`: something failed while doing the work; exit code 1.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130


class PhyllomeError(Exception):
    """Base of every error the installer reports to a user (never as a traceback)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UserError(PhyllomeError):
    """Bad input or an unsafe request; nothing has been changed."""

    exit_code = EXIT_BAD_INPUT


class InstallFailure(PhyllomeError):
    """The work itself failed."""

    exit_code = EXIT_FAILED


class NotAvailable(PhyllomeError):
    """A feature that this build does not provide (yet)."""

    exit_code = EXIT_UNAVAILABLE


class CommandError(InstallFailure):
    """A command exited non-zero. Its output is already redacted."""

    def __init__(self, argv_display: str, returncode: int, output_tail: str) -> None:
        message = f"command failed with exit code {returncode}: {argv_display}"
        if output_tail:
            message += "\n" + "\n".join("  | " + line for line in output_tail.splitlines())
        super().__init__(message)
        self.argv_display = argv_display
        self.returncode = returncode
        self.output_tail = output_tail
