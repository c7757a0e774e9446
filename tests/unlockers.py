"""A scripted VM-store unlocker for the first-boot tests (unit and TUI): the loop's rules of firstboot/unlock.py with
the store's state and the right secret given. fscrypt itself is tested in tests/storage/test_unlock.py."""

from __future__ import annotations

from pathlib import Path

from firstboot.unlock import Unlocker
from phyllome_installer.core.runner import RecordingRunner


class ScriptedUnlocker(Unlocker):
    """A store in ``state`` that opens with ``right``; every secret tried is kept in ``tried``."""

    def __init__(self, state: str = "locked", right: str = "right passphrase") -> None:
        super().__init__(RecordingRunner(), store=Path("/nonexistent"), mountpoint=Path("/"))
        self._state, self.right, self.tried = state, right, []

    def state(self) -> str:
        return self._state

    def try_secret(self, secret: str) -> bool:
        self.tried.append(secret)
        if secret == self.right:
            self._state = "unlocked"
        return secret == self.right
