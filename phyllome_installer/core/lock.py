"""One install at a time: an exclusive ``flock`` on ``/run/phyllome/install.lock``, taken before anything is read
from a disk and held until the process ends (the kernel releases it even after ``kill -9``).

The lock file names its holder (pid, command, start time), so a second install is refused with exit code 2 and
told which one is running. The sandbox image is locked the same way while it is attached (:func:`flock_file`).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from .errors import UserError

LOCK = Path("/run/phyllome/install.lock")


class Busy(UserError):
    """Another install holds the lock; nothing was touched."""


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace")
    except OSError:
        return "another install"
    info = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    pid = info.get("pid", "?")
    alive = pid.isdigit() and os.path.exists(f"/proc/{pid}")
    what = f"pid {pid}" + (f" ({info['command']})" if info.get("command") else "")
    since = f", started {info['started']}" if info.get("started") else ""
    return what + since + ("" if alive else "; its process is gone")


class InstallLock:
    def __init__(self, path: Path = LOCK) -> None:
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self, command: str) -> InstallLock:
        """Take the lock or raise :class:`Busy` naming the install that holds it."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise Busy(f"another install is running: {holder}",
                       hint="wait for it to finish; two installs at once would write over each other") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        safe = "".join(c if c.isprintable() else "?" for c in command)[:300]
        os.pwrite(fd, f"pid={os.getpid()}\ncommand={safe}\nstarted={time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> InstallLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def flock_file(path: Path, what: str) -> int:
    """An exclusive lock on a file (the sandbox image) for as long as the returned descriptor is open."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Busy(f"{what} {path} is in use by another install") from None
    return fd
