"""Reads and writes that stay inside one directory tree: the target's deployment, its /boot, its ESP.

A payload is input like any other: its tree may hold ``etc/modprobe.d -> /outside`` or
``usr/lib/ostree-boot/x -> /etc/shadow``. Every path below a :class:`Root` is resolved by the kernel with
``openat2(RESOLVE_IN_ROOT)``: symlinks, absolute ones and ``..`` included, resolve as if the root were ``/`` (as
they will on the booted system), never onto the live machine; magic links (``/proc/self/fd/N``) are refused.
Only regular files are read or written as data: a FIFO, a device or a socket is refused, never opened for data.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from pathlib import Path, PurePosixPath

_SYS_OPENAT2 = 437  # the same number on x86_64 and aarch64 (Linux 5.6 and later)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class Outside(OSError):
    """A path that is not a regular file (or directory) inside the root."""


def openat2(dirfd: int, path: str, flags: int, mode: int = 0,
            resolve: int = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, resolve)
    fd = _libc.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dirfd), ctypes.c_char_p(os.fsencode(path)),
                       ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


def _relative(rel: str | PurePosixPath) -> str:
    text = str(rel).lstrip("/")
    return text or "."


class Root:
    """One directory tree; paths given to its methods are relative to it (a leading / is allowed)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _rootfd(self) -> int:
        return os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def _open(self, rel: str | PurePosixPath, flags: int, mode: int = 0) -> int:
        root = self._rootfd()
        try:
            return openat2(root, _relative(rel), flags, mode)
        finally:
            os.close(root)

    def _dir(self, rel: str | PurePosixPath, create: bool, mode: int = 0o755) -> int:
        """An O_PATH descriptor of a directory inside the root, made (with its parents) when ``create``."""
        rel = _relative(rel)
        try:
            return self._open(rel, os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            if not create or rel == ".":
                raise
        parent = self._dir(str(PurePosixPath(rel).parent), True, mode)
        name = PurePosixPath(rel).name
        try:
            try:
                os.mkdir(name, mode, dir_fd=parent)
            except FileExistsError:
                pass
            return os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        finally:
            os.close(parent)

    def _parent(self, rel: str | PurePosixPath, create: bool = True) -> tuple[int, str]:
        path = PurePosixPath(_relative(rel))
        if path.name in ("", ".", ".."):
            raise Outside(errno.EINVAL, "not a file name", str(rel))
        return self._dir(str(path.parent), create), path.name

    def exists(self, rel: str | PurePosixPath) -> bool:
        try:
            os.close(self._open(rel, os.O_PATH))
            return True
        except OSError:
            return False

    def mode(self, rel: str | PurePosixPath) -> int:
        fd = self._open(rel, os.O_PATH)
        try:
            return stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)

    def read_bytes(self, rel: str | PurePosixPath, limit: int = 16 << 20) -> bytes:
        """A regular file's bytes (at most ``limit``: more is refused)."""
        fd = self._open(rel, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Outside(errno.EINVAL, "not a regular file", str(self.path / _relative(rel)))
            data = os.read(fd, limit + 1)
            while len(data) <= limit:
                more = os.read(fd, limit + 1 - len(data))
                if not more:
                    break
                data += more
            if len(data) > limit:
                raise Outside(errno.EFBIG, f"larger than {limit} bytes", str(self.path / _relative(rel)))
            return data
        finally:
            os.close(fd)

    def read_text(self, rel: str | PurePosixPath, limit: int = 16 << 20) -> str:
        return self.read_bytes(rel, limit).decode("utf-8", errors="replace")

    def write(self, rel: str | PurePosixPath, data: bytes, mode: int = 0o644) -> None:
        """Create or replace the contents of a regular file (never through a link, never into a special file)."""
        parent, name = self._parent(rel)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            try:
                fd = os.open(name, flags, mode, dir_fd=parent)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                os.unlink(name, dir_fd=parent)  # a link in the payload's place is replaced, never written through
                fd = os.open(name, flags | os.O_EXCL, mode, dir_fd=parent)
        finally:
            os.close(parent)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Outside(errno.EINVAL, "not a regular file", str(self.path / _relative(rel)))
            os.ftruncate(fd, 0)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def mkdir(self, rel: str | PurePosixPath, mode: int = 0o755) -> None:
        os.close(self._dir(rel, True, mode))

    def symlink(self, rel: str | PurePosixPath, target: str) -> None:
        parent, name = self._parent(rel)
        try:
            try:
                os.unlink(name, dir_fd=parent)
            except FileNotFoundError:
                pass
            os.symlink(target, name, dir_fd=parent)
        finally:
            os.close(parent)

    def chown(self, rel: str | PurePosixPath, uid: int, gid: int) -> None:
        parent, name = self._parent(rel, create=False)
        try:
            os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)

    def chmod(self, rel: str | PurePosixPath, mode: int) -> None:
        fd = self._open(rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def copy_tree_from(self, source: Root, rel_source: str, rel_target: str = ".",
                       skip=lambda rel: False) -> tuple[list[str], list[str]]:
        """Copy the regular files and directories below ``source``'s ``rel_source`` into this root, never
        overwriting; links and special files are not copied (returned as skipped). (copied, skipped)."""
        copied: list[str] = []
        skipped: list[str] = []
        top = source._open(rel_source, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for dirpath, dirnames, filenames, dirfd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
                base = PurePosixPath(dirpath)
                for name in sorted(dirnames + filenames):
                    rel = str(base / name).removeprefix("./")
                    if skip(rel):
                        if name in dirnames:
                            dirnames.remove(name)
                        continue
                    info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                    target = PurePosixPath(rel_target) / rel
                    if stat.S_ISDIR(info.st_mode):
                        self.mkdir(target)
                    elif not stat.S_ISREG(info.st_mode):
                        skipped.append(rel)
                    elif not self.exists(target):
                        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
                        try:
                            with os.fdopen(fd, "rb", closefd=False) as handle:
                                self.write(target, handle.read(), stat.S_IMODE(info.st_mode))
                        finally:
                            os.close(fd)
                        copied.append(rel)
        finally:
            os.close(top)
        return copied, skipped
