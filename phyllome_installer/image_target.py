"""``--target-image``: the file an install writes a whole disk into, checked before anything is created.

The real run and the dry run ask the same questions: the path is a regular file or nothing (never a directory or
a device), a new image's size is one the layout accepts and the filesystem can hold as a file (asked of the
filesystem itself with an unnamed O_TMPFILE, so a dry run leaves no trace), and the filesystem has room for what
an install writes. A refused image leaves no file behind: the image is created by this module, with O_EXCL, and
removed again when it cannot be given its size.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from storage.sizes import MIN_DISK_BYTES

from .core.errors import UserError
from .core.sizes import GiB, human_size

if TYPE_CHECKING:  # the pydantic models load when an image is checked, not with the TUI
    from .answers import Payload

SLACK = 512 << 20
"""What an install writes besides the payload: filesystems' metadata, the boot loader, the log."""
UNKNOWN_PAYLOAD = 4 * GiB
"""A payload fetched from a URL or a registry: its size is known only while it is pulled."""


def payload_bytes(payload: Payload) -> int:
    """About what the payload takes once deployed: a local repository's objects (their size is what ostree
    checks out and links), else a generous guess."""
    from .answers import LocalPayload

    if not isinstance(payload, LocalPayload):
        return UNKNOWN_PAYLOAD
    total = 0
    for directory, _, files in os.walk(Path(payload.repo) / "objects"):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:
                continue
    return total


def _kind(mode: int) -> str:
    return ("a directory" if stat.S_ISDIR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")


def _fits_as_a_file(directory: Path, size: int) -> str | None:
    """Why the filesystem cannot hold a sparse file of ``size`` (None: it can, or it cannot tell)."""
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except OSError:
        return None  # no O_TMPFILE here: the real run finds out, and removes what it created
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        return exc.strerror
    finally:
        os.close(fd)
    return None


def check(image: Path, size: int | None, payload: Payload) -> int:
    """The image's size once created (or now). Raises :class:`UserError` for anything the install would refuse."""

    image = Path(os.path.abspath(image))
    try:
        info = os.stat(image)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise UserError(f"--target-image {image}: {exc.strerror}") from None
    if info is not None:
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"--target-image {image} is {_kind(info.st_mode)}, not a disk image file; nothing was "
                            "written", hint="give a file (it is created with --image-size when missing); to install "
                                             "onto a disk, name it in [storage] disk")
        size = info.st_size
        directory = image.parent
    else:
        if size is None:
            raise UserError(f"{image} does not exist: give its size (--image-size) to create it")
        directory = image.parent
        if not directory.is_dir():
            raise UserError(f"--target-image {image}: its directory {directory} does not exist")
    if size < MIN_DISK_BYTES:
        raise UserError(f"{image} would be {human_size(size)}; Phyllome OS needs at least "
                        f"{human_size(MIN_DISK_BYTES)}; nothing was written", hint="give --image-size 16G or more")
    if info is None:
        why = _fits_as_a_file(directory, size)
        if why:
            raise UserError(f"--image-size {human_size(size)}: the filesystem of {directory} cannot hold a file "
                            f"that large ({why}); nothing was written", hint="give a smaller --image-size")
    vfs = os.statvfs(directory)
    free = vfs.f_bavail * vfs.f_frsize
    need = min(size, payload_bytes(payload) + SLACK)
    if free < need:
        raise UserError(f"the filesystem of {directory} has {human_size(free)} free; the install writes about "
                        f"{human_size(need)} into {image.name}; nothing was written",
                        hint="free some space, or put the image on another filesystem")
    return size


def create(image: Path, size: int) -> None:
    """A new sparse image of ``size`` bytes; nothing is left behind when the filesystem refuses the size."""
    fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, size)
    except OSError as exc:

        os.close(fd)
        image.unlink(missing_ok=True)
        raise UserError(f"cannot create {image} of {human_size(size)}: {exc.strerror}; nothing was left behind",
                        hint="give a smaller --image-size" if exc.errno == errno.EFBIG else "") from None
    os.close(fd)
