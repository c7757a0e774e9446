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


class TargetFiles:
    """Writes into the target, or, when ``dry``, reports each write through ``show`` ("would write ...")."""

    def __init__(self, dry: bool = False, show: Callable[[str], None] | None = None) -> None:
        self.dry = dry
        self.show = show or (lambda line: None)

    def write(self, path: Path, text: str | bytes, mode: int = 0o644) -> Path:
        path = Path(path)
        if self.dry:
            self.show(f"write {path} (mode {mode:04o})")
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode() if isinstance(text, str) else text)
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

    def note(self, what: str) -> None:
        """A step that is neither a command nor a write (shown in a dry run only)."""
        if self.dry:
            self.show(what)
