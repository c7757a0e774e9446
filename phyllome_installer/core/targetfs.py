"""File operations on the target, done for real or only shown (a dry run).

The install's tasks write files into the target (/etc of the deployment, grub.cfg, fscrypt.conf, the log) as well
as running commands. In a dry run the same task code runs with a :class:`~.runner.DryRunRunner` and a dry
:class:`TargetFiles`: commands and writes are shown in the order the real run would do them, and nothing is
written anywhere.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .confined import Root
from .errors import InstallFailure


class TargetFiles:
    """Writes into the target, or, when ``dry``, reports each write through ``show`` ("would write ...")."""

    def __init__(self, dry: bool = False, show: Callable[[str], None] | None = None) -> None:
        self.dry = dry
        self.show = show or (lambda line: None)

    def write(self, path: Path, text: str | bytes, mode: int | None = 0o644) -> Path:
        """``mode`` None: a filesystem without modes (the ESP's FAT, through FUSE where chmod is not implemented)."""
        path = Path(path)
        if self.dry:
            self.show(f"write {path}" + (f" (mode {mode:04o})" if mode is not None else ""))
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        if mode is None:  # FAT through fusefat does not truncate: an overwritten file kept its old size and tail
            path.unlink(missing_ok=True)
            flags |= os.O_EXCL
        fd = os.open(path, flags, 0o644 if mode is None else mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode() if isinstance(text, str) else text)
        if mode is not None:
            os.chmod(path, mode)
        return path

    def mkdir(self, path: Path, mode: int = 0o755) -> Path:
        path = Path(path)
        if self.dry:
            self.show(f"create the directory {path}")
        else:
            path.mkdir(parents=True, exist_ok=True, mode=mode)
        return path

    def symlink(self, link: Path, target: str) -> None:
        if self.dry:
            self.show(f"link {link} -> {target}")
            return
        link = Path(link)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)

    def chown(self, path: Path, uid: int, gid: int) -> None:
        if not self.dry:
            os.chown(path, uid, gid)

    def copy(self, source: Path, target: Path) -> None:
        if self.dry:
            self.show(f"copy {source} to {target}")
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)

    def rename(self, source: Path, target: Path) -> None:
        """Put ``source`` (written and checked under a partial name) in place of ``target`` in one step, on disk
        first: a reader sees the old file or the whole new one, never a half-written one."""
        if self.dry:
            self.show(f"rename {source} to {target}")
            return
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(source, target)

    def note(self, what: str) -> None:
        """A step that is neither a command nor a write (shown in a dry run only)."""
        if self.dry:
            self.show(what)

    def within(self, root: Path) -> ConfinedFiles:
        """The same writes, with paths relative to ``root`` and resolved inside it (a payload's links included)."""
        return ConfinedFiles(self, Root(root))


class ConfinedFiles:
    """:class:`TargetFiles` below one root: every read and write resolves inside it (core/confined.py)."""

    def __init__(self, files: TargetFiles, root: Root) -> None:
        self.files = files
        self.root = root
        self.dry = files.dry

    def path(self, rel: str) -> Path:
        return self.root.path / rel.lstrip("/")

    def _failed(self, what: str, rel: str, exc: OSError) -> InstallFailure:
        return InstallFailure(f"cannot {what} /{rel.lstrip('/')} in {self.root.path}: {exc.strerror}",
                              hint="the payload's tree has a link or a special file there; links resolve inside "
                                   "the installed system, never outside it")

    def write(self, rel: str, text: str | bytes, mode: int = 0o644) -> Path:
        if self.dry:
            self.files.show(f"write {self.path(rel)} (mode {mode:04o})")
            return self.path(rel)
        try:
            self.root.write(rel, text.encode() if isinstance(text, str) else text, mode)
        except OSError as exc:
            raise self._failed("write", rel, exc) from None
        return self.path(rel)

    def mkdir(self, rel: str, mode: int = 0o755) -> Path:
        if self.dry:
            self.files.show(f"create the directory {self.path(rel)}")
            return self.path(rel)
        try:
            self.root.mkdir(rel, mode)
        except OSError as exc:
            raise self._failed("create the directory", rel, exc) from None
        return self.path(rel)

    def symlink(self, rel: str, target: str) -> None:
        if self.dry:
            self.files.show(f"link {self.path(rel)} -> {target}")
        else:
            self.root.symlink(rel, target)

    def chown(self, rel: str, uid: int, gid: int) -> None:
        if not self.dry:
            self.root.chown(rel, uid, gid)

    def chmod(self, rel: str, mode: int) -> None:
        if not self.dry:
            self.root.chmod(rel, mode)

    def read_text(self, rel: str, default: str = "") -> str:
        """A regular file of the root, or ``default`` when there is none (a link out of it reads inside it)."""
        try:
            return self.root.read_text(rel)
        except FileNotFoundError:
            return default
        except OSError as exc:
            raise InstallFailure(f"cannot read /{rel.lstrip('/')} of the payload ({self.root.path}): "
                                 f"{exc.strerror}") from None

    def exists(self, rel: str) -> bool:
        return self.root.exists(rel)

    def mode(self, rel: str) -> int:
        return self.root.mode(rel)
