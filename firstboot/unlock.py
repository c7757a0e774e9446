"""The VM store at every boot: the passphrase or the recovery code -> ``fscrypt unlock``, before libvirt starts.

The installer encrypts ``/var/lib/libvirt/images`` with two fscrypt protectors: ``vmstore`` (the user's
passphrase) and ``recovery`` (the code shown once at install). :class:`Unlocker` tells which one a secret is for
by its form (a recovery code is eight groups of four base32 characters; a passphrase may look like anything, so
one that happens to look like a code is tried against both), and gives the user three tries.

Where the secret comes from is injected (:data:`Ask`): ``systemd-ask-password`` on the console when systemd runs
the unlock unit (so it appears like a LUKS prompt, and Plymouth or the console agent answers it), the terminal
otherwise, a TUI field in the first-boot screens. Secrets reach fscrypt on stdin only (storage/fscrypt.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from phyllome_installer.core import mountinfo as core_mountinfo
from phyllome_installer.core.errors import InstallFailure, UserError
from phyllome_installer.core.runner import Runner
from phyllome_installer.core.secrets import REDACTOR, Redactor
from storage.fscrypt import PROTECTOR_NAME, RECOVERY_NAME, Fscrypt

STORE = Path("/var/lib/libvirt/images")
TRIES = 3
ASK_ID = "phyllome-vmstore"

#: ``ask(prompt, attempt) -> secret``; None (or an empty string) means the user chose to skip.
Ask = Callable[[str, int], "str | None"]
Tell = Callable[[str], None]

LOCKED_MESSAGE = ("The VM store stays locked: virtual machines that use it cannot start until it is unlocked. "
                  "Unlock it later with: sudo phyllome-firstboot unlock (then: sudo systemctl restart libvirtd)")


def as_recovery_code(text: str) -> str | None:
    """The recovery code in its canonical form when ``text`` is one (any case, spaces or dashes), else None."""
    compact = re.sub(r"[\s-]", "", text).upper()
    if len(compact) != 32 or not re.fullmatch(r"[A-Z2-7]+", compact):
        return None
    return "-".join(compact[i : i + 4] for i in range(0, 32, 4))


def store_mountpoint(store: Path, mountinfo: Path = Path("/proc/self/mountinfo"), *,
                     exists: Callable[[str], bool] = os.path.lexists) -> Path:
    """The mount point of the filesystem root that holds ``store``: where fscrypt keeps its ``.fscrypt`` metadata.

    On an ostree host /var is a bind mount of a subdirectory of the root filesystem, which is mounted whole at
    /sysroot: the store's own mount is not the one fscrypt needs.
    """
    dev = os.stat(store).st_dev
    want = f"{os.major(dev)}:{os.minor(dev)}"
    found = [(mount.root, mount.point) for mount in core_mountinfo.parse(Path(mountinfo).read_text())
             if mount.device == want]
    # fscrypt's own choice of the filesystem's "main" mount: one that is not below another mount of the same
    # filesystem (on an ostree host that is "/", the deployment, with /sysroot and /var below it: the payload's
    # /.fscrypt -> sysroot/.fscrypt link lets fscrypt find the metadata there); among several, the whole one.
    points = [point for _, point in found]
    outer = [(root, point) for root, point in found
             if not any(other != point and (other == "/" or point.startswith(other.rstrip("/") + "/"))
                        for other in points)]
    if outer:
        root, point = sorted(outer, key=lambda item: (item[0] != "/", len(item[1])))[0]
        if root == "/" or exists(os.path.join(point, ".fscrypt")):
            return Path(point)
    raise UserError(f"cannot find where the filesystem holding {store} is mounted whole (its .fscrypt metadata)")


@dataclass(frozen=True)
class Outcome:
    """What happened: ``state`` is unlocked, already-unlocked, not-encrypted, skipped or failed."""

    state: str
    message: str
    tries: int = 0

    @property
    def ok(self) -> bool:
        return self.state != "failed"


class Unlocker:
    """Unlock one fscrypt-encrypted directory with its passphrase or recovery protector."""

    def __init__(self, runner: Runner, *, store: Path = STORE, root: Path = Path("/"), mountpoint: Path | None = None,
                 mountinfo: Path = Path("/proc/self/mountinfo"), redactor: Redactor = REDACTOR) -> None:
        self.store = Path(store)
        self.tool = Fscrypt(runner, Path(root) / "etc" / "fscrypt.conf", redactor=redactor)
        self._mountpoint = mountpoint
        self.mountinfo = mountinfo

    @property
    def mountpoint(self) -> Path:
        if self._mountpoint is None:
            self._mountpoint = store_mountpoint(self.store, self.mountinfo)
        return self._mountpoint

    def state(self) -> str:
        """missing, not-encrypted, locked or unlocked."""
        if not self.store.is_dir():
            return "missing"
        if not self.tool.config.is_file():  # the installer writes it only when it encrypts the store
            return "not-encrypted"
        try:
            status = self.tool.status(self.store)
        except InstallFailure as exc:
            if "not setup for use with fscrypt" in str(exc):
                return "not-encrypted"
            raise
        if not status.encrypted:
            return "not-encrypted"
        return "unlocked" if status.unlocked else "locked"

    def _protectors(self) -> dict[str, str]:
        """protector name -> id for this store."""
        return {name: pid for pid, name in self.tool.status(self.store).protectors.items()}

    def try_secret(self, secret: str) -> bool:
        """True when the secret unlocked the store; False when it is wrong. Other errors raise."""
        protectors = self._protectors()
        code = as_recovery_code(secret)
        attempts: list[tuple[str, str]] = []
        if code is not None and RECOVERY_NAME in protectors:
            attempts.append((protectors[RECOVERY_NAME], code))
        if PROTECTOR_NAME in protectors:
            attempts.append((protectors[PROTECTOR_NAME], secret))
        if not attempts:
            attempts = [(pid, secret) for pid in protectors.values()]
        for protector, value in attempts:
            try:
                self.tool.unlock(self.store, self.mountpoint, value, protector=protector)
                return True
            except UserError:
                continue
        return False

    def run(self, ask: Ask, tell: Tell, *, tries: int = TRIES) -> Outcome:
        """Ask up to ``tries`` times; an empty answer skips. Never raises for a wrong secret."""
        state = self.state()
        if state == "missing":
            return Outcome("not-encrypted", f"{self.store} does not exist: there is no VM store to unlock")
        if state == "not-encrypted":
            return Outcome("not-encrypted", f"{self.store} is not encrypted: nothing to unlock")
        if state == "unlocked":
            return Outcome("already-unlocked", f"{self.store} is already unlocked")
        for attempt in range(1, tries + 1):
            prompt = (f"Passphrase or recovery code for the VM store ({self.store})"
                      + (f", try {attempt} of {tries}" if attempt > 1 else "") + ":")
            secret = ask(prompt, attempt)
            if not secret:
                return Outcome("skipped", "Skipped. " + LOCKED_MESSAGE, attempt - 1)
            if self.try_secret(secret):
                return Outcome("unlocked", f"The VM store {self.store} is unlocked.", attempt)
            left = tries - attempt
            tell("Wrong passphrase or recovery code." + (f" {left} tr{'y' if left == 1 else 'ies'} left." if left
                                                          else ""))
        return Outcome("failed", f"{tries} wrong tries. " + LOCKED_MESSAGE, tries)


# ---------------------------------------------------------------------------------------------- where secrets come from


def ask_with_systemd(runner: Runner, *, timeout: int = 0) -> Ask:
    """``systemd-ask-password`` (the console, Plymouth, or any password agent): how LUKS asks at boot.

    The secret comes back on its stdout, which the runner neither logs nor streams (``secret_output``)."""

    def ask(prompt: str, attempt: int) -> str | None:
        # --emoji=no: a Linux VT cannot draw the lock and key.
        result = runner.run(["systemd-ask-password", f"--timeout={timeout}", f"--id={ASK_ID}", "--emoji=no", "-n",
                             prompt], check=False, secret_output=True)
        if not result.ok:
            return None
        return result.stdout

    return ask


def _read_line(prompt: str) -> str:
    """A line from stdin when it is not a terminal (a pipe from a script or a test): nothing is echoed anyway."""
    import sys

    print(prompt, file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


def ask_on_terminal(read: Callable[[str], str] | None = None) -> Ask:
    """The controlling terminal, without echo (``getpass``); a line of stdin when it is a pipe."""
    if read is None:
        import getpass
        import sys

        read = getpass.getpass if sys.stdin.isatty() else _read_line

    def ask(prompt: str, attempt: int) -> str | None:
        try:
            return read(prompt + " ")
        except EOFError:
            return None

    return ask


def run_by_systemd(environ: dict[str, str] | None = None) -> bool:
    """systemd sets ``$INVOCATION_ID`` for every unit it runs."""
    return bool((os.environ if environ is None else environ).get("INVOCATION_ID"))
