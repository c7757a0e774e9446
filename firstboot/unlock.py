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
from typing import TextIO

from phyllome_installer.core import mountinfo as core_mountinfo
from phyllome_installer.core.errors import InstallFailure, UserError
from phyllome_installer.core.facts import VM_STORE
from phyllome_installer.core.runner import Runner
from phyllome_installer.core.secrets import REDACTOR, Redactor
from storage.fscrypt import PROTECTOR_NAME, RECOVERY_NAME, Fscrypt

from .checks import has_policy

STORE = Path(VM_STORE)
TRIES = 3
MAX_SECRET = 1024
"""The longest passphrase or recovery code a try may be (characters); a longer line is refused unread."""
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


def normalize(secret: str) -> str:
    """A typed or piped secret as the installer stored it: no byte-order mark before it, no CR or LF after it
    (a line from a Windows editor or a CRLF pipe is the same passphrase)."""
    return secret.removeprefix("\ufeff").rstrip("\r\n")


class Unlocker:
    """Unlock one fscrypt-encrypted directory with its passphrase or recovery protector.

    Every try travels to fscrypt on stdin. A guess is masked in what this class reports (``guesses``), but it
    is not registered with the process-wide ``redactor`` until it proved right (a right secret has at least
    8 characters): a wrong guess such as ``a`` or ``images`` would otherwise mask every ``a`` in the log and make
    the runner refuse every later command whose argv happens to contain it.
    """

    def __init__(self, runner: Runner, *, store: Path = STORE, root: Path = Path("/"), mountpoint: Path | None = None,
                 mountinfo: Path = Path("/proc/self/mountinfo"), redactor: Redactor = REDACTOR) -> None:
        self.store = Path(store)
        self.redactor = redactor
        self.guesses = Redactor()
        self.tool = Fscrypt(runner, Path(root) / "etc" / "fscrypt.conf", redactor=self.guesses)
        self._mountpoint = mountpoint
        self.mountinfo = mountinfo
        self.opened: tuple[str, str] | None = None
        """(protector id, secret) that unlocked the store in this run: what a TPM enrolment may use, in memory."""

    @property
    def mountpoint(self) -> Path:
        if self._mountpoint is None:
            self._mountpoint = store_mountpoint(self.store, self.mountinfo)
        return self._mountpoint

    def state(self) -> str:
        """missing, symlink, not-encrypted, no-config, locked or unlocked. Whether the store is encrypted is asked
        of the kernel, not of fscrypt's configuration or messages."""
        if self.store.is_symlink():
            return "symlink"
        if not self.store.is_dir():
            return "missing"
        if not has_policy(self.store):
            return "not-encrypted"
        if not self.tool.config.is_file():
            return "no-config"
        status = self.tool.status(self.store)
        if not status.encrypted:
            raise InstallFailure(f"{self.store} has an encryption policy that fscrypt does not report",
                                 hint=f"see: fscrypt status {self.store}")
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
            except UserError:
                continue
            except InstallFailure as exc:
                raise InstallFailure(self.guesses.redact(exc.message), hint=exc.hint) from None
            self.redactor.add(value)
            self.opened = (protector, value)
            return True
        return False

    def run(self, ask: Ask, tell: Tell, *, tries: int = TRIES) -> Outcome:
        """Ask up to ``tries`` times; an empty answer skips. Never raises for a wrong secret."""
        state = self.state()
        if state == "symlink":
            return Outcome("failed", f"{self.store} is a symbolic link (to {os.readlink(self.store)}), not the VM "
                                     f"store itself: nothing was unlocked. Give the store: --store "
                                     f"{os.path.realpath(self.store)}")
        if state == "missing":
            return Outcome("not-encrypted", f"{self.store} does not exist: there is no VM store to unlock")
        if state == "not-encrypted":
            return Outcome("not-encrypted", f"{self.store} is not encrypted: nothing to unlock")
        if state == "no-config":
            return Outcome("failed", f"{self.store} is encrypted, but {self.tool.config} is missing: fscrypt cannot "
                                     "unlock it without its configuration. " + LOCKED_MESSAGE)
        if state == "unlocked":
            return Outcome("already-unlocked", f"{self.store} is already unlocked")
        for attempt in range(1, tries + 1):
            prompt = (f"Passphrase or recovery code for the VM store ({self.store})"
                      + (f", try {attempt} of {tries}" if attempt > 1 else "") + ":")
            secret = normalize(ask(prompt, attempt) or "")
            if not secret:
                return Outcome("skipped", "Skipped. " + LOCKED_MESSAGE, attempt - 1)
            left = tries - attempt
            if len(secret) > MAX_SECRET:
                tell(f"That is longer than {MAX_SECRET} characters: not a passphrase or recovery code."
                     + (f" {left} tr{'y' if left == 1 else 'ies'} left." if left else ""))
                continue
            if self.try_secret(secret):
                return Outcome("unlocked", f"The VM store {self.store} is unlocked.", attempt)
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


def read_line(prompt: str, stream: TextIO | None) -> str:
    """A line from ``stream`` (stdin when it is not a terminal: a pipe from a script or a test; nothing is echoed
    anyway), read in bounded pieces: a line longer than :data:`MAX_SECRET` is consumed to its end but only its
    first ``MAX_SECRET + 1`` characters are kept (enough to refuse it). EOFError when there is no line: stdin
    closed, at its end, or not readable."""
    import sys

    print(prompt, file=sys.stderr, flush=True)
    if stream is None:
        raise EOFError
    try:
        line = stream.readline(MAX_SECRET + 2)
        if not line:
            raise EOFError
        rest = line
        while not rest.endswith("\n") and rest:
            rest = stream.readline(1 << 16)
    except (OSError, ValueError, UnicodeDecodeError):
        raise EOFError from None
    return line.rstrip("\n")[: MAX_SECRET + 1]


def ask_on_terminal(read: Callable[[str], str] | None = None) -> Ask:
    """The controlling terminal, without echo (``getpass``); a line of stdin when it is a pipe."""
    if read is None:
        import getpass
        import sys

        stdin = sys.stdin
        interactive = stdin is not None and not stdin.closed and stdin.isatty()
        read = getpass.getpass if interactive else (lambda prompt: read_line(prompt, stdin))

    def ask(prompt: str, attempt: int) -> str | None:
        try:
            return read(prompt + " ")
        except EOFError:
            return None

    return ask


def run_by_systemd(environ: dict[str, str] | None = None) -> bool:
    """systemd sets ``$INVOCATION_ID`` for every unit it runs."""
    return bool((os.environ if environ is None else environ).get("INVOCATION_ID"))
