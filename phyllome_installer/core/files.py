"""Bounded reads of files that someone else controls (answer files, passphrase files, machine profiles, sysfs),
and :func:`write_regular` for every path a command is told to write.

A hostile or careless path can name ``/dev/zero`` (endless), a FIFO (blocks forever), a directory or a huge file.
:func:`read_bounded` opens without blocking, reads only regular files (and, where asked, the pseudo-files of
``/proc`` and ``/sys``, which are regular files too), and stops at a size cap. Every refusal is a
:class:`BoundedReadError` with a reason a user can act on.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

#: Default cap: an answer file, a profile or a passphrase file is a few kilobytes.
DEFAULT_CAP = 1 << 20


class BoundedReadError(OSError):
    """Why a file was not read. ``reason`` is a short phrase ("is a FIFO, not a regular file")."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path} {self.reason}"


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO", "a character device")."""
    return _kind(mode)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_bounded(path: Path | str, cap: int = DEFAULT_CAP, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of a regular file of at most ``cap`` bytes. Never blocks, never reads past ``cap + 1``.

    Raises :class:`BoundedReadError` for anything else: missing, unreadable, a FIFO, a device, a directory, a
    symlink loop, or too large.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise BoundedReadError(path, "does not exist") from None
    except PermissionError:
        raise BoundedReadError(path, "cannot be read (permission denied)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BoundedReadError(path, "is a symbolic link loop" if follow_symlinks
                                   else "is a symbolic link (refused)") from None
        raise BoundedReadError(path, f"cannot be opened: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise BoundedReadError(path, f"is {_kind(mode)}, not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= cap:
            try:
                chunk = os.read(fd, min(cap + 1 - size, 1 << 16))
            except BlockingIOError:  # a regular file never blocks; be safe all the same
                break
            except OSError as exc:
                raise BoundedReadError(path, f"cannot be read: {exc.strerror}") from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > cap:
            raise BoundedReadError(path, f"is larger than {cap} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text_bounded(path: Path | str, cap: int = DEFAULT_CAP, *, errors: str = "strict") -> str:
    """:func:`read_bounded` decoded as UTF-8 (a leading byte-order mark, as Notepad writes it, is dropped)."""
    data = read_bounded(path, cap)
    try:
        return data.decode("utf-8-sig", errors=errors)
    except UnicodeDecodeError:
        raise BoundedReadError(path, "is not UTF-8 text") from None



#: Where no command writes a file of its own: kernel settings, devices, processes.
PSEUDO = ("/proc", "/sys", "/dev")


def check_writable_target(path: Path | str) -> None:
    """Refuse a path a command was told to write when it is not (or would not be) a plain file of its own: a
    symlink, a directory, a FIFO, a device, a socket, a file with other hard links, or anything under /proc, /sys
    or /dev. Raises :class:`BoundedReadError` (an OSError) with the reason."""
    for where in (os.path.abspath(path), os.path.realpath(path)):
        if any(where == top or where.startswith(top + "/") for top in PSEUDO):
            raise BoundedReadError(path, f"is in /{where.split('/')[1]} (as {where}): not a file a command may "
                                         "write")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise BoundedReadError(path, "is a symbolic link (refused: it would be followed or replaced)")
    if not stat.S_ISREG(info.st_mode):
        raise BoundedReadError(path, f"is {_kind(info.st_mode)}, not a regular file (refused)")
    if info.st_nlink != 1:
        raise BoundedReadError(path, "has other hard links (refused)")


def write_regular(path: Path | str, data: bytes, mode: int = 0o644, *, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` whole (a temporary file beside it, then a rename: a reader never sees half a
    file), only where :func:`check_writable_target` allows: never over a link, a device or a special file.

    ``durable``: the data reaches the disk before the rename (fsync). False for what is worked out again whenever
    it is missing or unreadable (a saved hardware profile, a cache): a reader still never sees half a file, and
    after a power cut the file may be the previous one, or empty on some filesystems, which its reader treats
    as absent."""
    path = Path(path)
    check_writable_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        check_writable_target(path)  # again, just before the rename
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
