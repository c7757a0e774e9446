"""The VM store unlocked by the TPM 2.0 while the boot chain is the one it trusted (Secure Boot's state, PCR 7).

A third fscrypt protector, ``raw_key`` named ``tpm``, beside the passphrase and the recovery code: its 32-byte
key is generated at enrolment, sealed with ``systemd-creds --with-key=tpm2 --tpm2-pcrs=7`` (systemd 252, Debian
12 and Fedora alike; docs/firstboot.md says why not clevis) into ``/var/lib/phyllome/vmstore.tpm2.cred``, and
exists in clear only in a private tmpfs mounted for the enrolment and unmounted at once. At boot the credential is
unsealed into a private tmpfs (fscrypt reads a raw key only from a regular file of 32 bytes), handed to
``fscrypt unlock --key=FILE`` and gone when the tmpfs is unmounted: the key never reaches argv, a log or a disk.
When the TPM refuses (Secure Boot turned off, its keys changed, the TPM cleared), the unlock says why in one line
and asks for the passphrase, never leaving the store unlocked.

Enrolment needs a secret that opens the store's policy (fscrypt wraps the policy's key for the new protector): the
unlock at the first real boot enrols right after the passphrase unlocked the store (``[firstboot] tpm_unlock``);
``phyllome-firstboot tpm enrol`` asks for it. Sealing belongs to that first real boot, never to the install: the
live medium's PCRs are not the installed system's (bootc found this, issue 421).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from phyllome_installer.core.errors import InstallFailure, UserError
from phyllome_installer.core.runner import Runner
from storage.fscrypt import Fscrypt

log = logging.getLogger("phyllome.tpm")

CREDENTIAL = "var/lib/phyllome/vmstore.tpm2.cred"
"""The sealed key, relative to the root (only the TPM that sealed it, in the same PCR 7 state, opens it)."""
CREDENTIAL_NAME = "phyllome-vmstore"
"""Bound into the credential: a credential made for another purpose does not decrypt as this one."""
PROTECTOR = "tpm"
PCRS = "7"
KEY_BYTES = 32
TPM_WAIT = 10.0
"""How long the unlock waits for /dev/tpmrm0 when a key was sealed (udev loads the TPM's driver early, but
nothing orders the unlock after it)."""
REFUSED = ("the TPM did not release the VM store's key: the boot chain changed since it was sealed (Secure Boot "
           "turned off, its keys changed, a firmware update) or the TPM was cleared")


def present(root: Path = Path("/")) -> str | None:
    """None when a TPM 2.0 is usable here; else why not, in words."""
    if not (Path(root) / "dev/tpmrm0").exists():
        return "this machine has no TPM 2.0 (/dev/tpmrm0 is missing)"
    major = Path(root) / "sys/class/tpm/tpm0/tpm_version_major"
    try:
        if major.read_text().strip() != "2":
            return "this machine's TPM is not a TPM 2.0"
    except OSError:
        pass  # older kernels do not say; /dev/tpmrm0 exists only for TPM 2.0
    return None


@dataclass(frozen=True)
class Status:
    tpm: str | None
    """None: a TPM 2.0 is there; else why not."""
    protector: str
    """The tpm protector's id on the store's filesystem ('' when there is none)."""
    credential: bool

    @property
    def enrolled(self) -> bool:
        return bool(self.protector) and self.credential


@contextlib.contextmanager
def private_tmpfs(runner: Runner, parent: Path = Path("/run/phyllome")) -> Iterator[Path]:
    """A tmpfs of its own (mode 0700), mounted for the block and unmounted at its end, whatever happens."""
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    where = Path(tempfile.mkdtemp(prefix="tpm-", dir=parent))
    runner.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700,nosuid,nodev,noexec", "tmpfs", str(where)])
    try:
        yield where
    finally:
        runner.run(["umount", str(where)], check=False)
        with contextlib.suppress(OSError):
            where.rmdir()


class Tpm:
    """The tpm protector of one store. ``fscrypt_env``: FSCRYPT_CONF for the store's filesystem."""

    def __init__(self, runner: Runner, *, store: Path, mountpoint: Path, fscrypt_conf: Path,
                 root: Path = Path("/"), seal: tuple[str, ...] = ("--with-key=tpm2", f"--tpm2-pcrs={PCRS}")) -> None:
        """``seal``: how systemd-creds seals (tests on a machine without a TPM pass ``--with-key=host``, and say
        so in their names)."""
        self.runner = runner
        self.store = Path(store)
        self.mountpoint = Path(mountpoint)
        self.env = {"FSCRYPT_CONF": str(fscrypt_conf)}
        self.root = Path(root)
        self.seal = seal
        self.uses_tpm = seal[0] == "--with-key=tpm2"
        self.credential = self.root / CREDENTIAL
        self.tool = Fscrypt(runner, Path(fscrypt_conf))

    def _fscrypt(self, *args: str, stdin: str | None = None, check: bool = True):
        return self.runner.run(["fscrypt", *args], stdin=stdin, env=self.env, check=check)

    def _writing(self) -> list[str]:
        """What runs a command that writes fscrypt's metadata: on a booted ostree host that metadata is under the
        read-only /sysroot (/.fscrypt links there), so the command runs in a private mount namespace where
        /sysroot is writable (as ostree's own commands do), never remounting it for the running system."""
        sysroot = self.root / "sysroot"
        # Not os.path.ismount: / is a bind of a directory of the same filesystem, so the two share a device.
        if not ((sysroot / "ostree").is_dir() and os.statvfs(sysroot).f_flag & os.ST_RDONLY):
            return []
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                f'mount -o remount,rw {sysroot} && exec "$@"', "sh"]

    def _fswrite(self, *args: str, stdin: str | None = None, check: bool = True):
        return self.runner.run([*self._writing(), "fscrypt", *args], stdin=stdin, env=self.env, check=check)

    def _protectors(self) -> dict[str, tuple[str, str]]:
        """id -> (kind, name) of the protectors on the store's filesystem."""
        out = self._fscrypt("status", str(self.mountpoint)).stdout
        return {pid: (kind, name) for pid, kind, name in
                re.findall(r'^([0-9a-f]{16})\s+\S+\s+(custom|raw key) protector "(.*)"$', out, re.MULTILINE)}

    def _policy(self) -> str:
        policy = self.tool.status(self.store).policy  # storage/fscrypt.py reads fscrypt's status
        if not policy:
            raise InstallFailure(f"fscrypt reports no policy for {self.store}")
        return policy

    def status(self) -> Status:
        tpm = (next((pid for pid, (kind, name) in self._protectors().items()
                     if kind == "raw key" and name == PROTECTOR), ""))
        return Status(present(self.root) if self.uses_tpm else None, tpm,
                      self.credential.is_file())

    def enrol(self, secret: str, unlock_with: str) -> str:
        """Add the tpm protector (its key sealed to the TPM), replacing an earlier one. ``secret`` opens the policy
        through the protector ``unlock_with`` (the passphrase's or the recovery code's id). Returns its id."""
        if self.uses_tpm and (why := present(self.root)):
            raise UserError(f"{why}: the VM store cannot be unlocked by a TPM here")
        if self.status().protector:
            self.remove()
        policy = self._policy()
        mount = str(self.mountpoint)
        with private_tmpfs(self.runner) as private:
            key = private / "key"
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, secrets.token_bytes(KEY_BYTES))
            finally:
                os.close(fd)
            before = set(self._protectors())
            self._fswrite("metadata", "create", "protector", mount, "--source=raw_key", f"--name={PROTECTOR}",
                          f"--key={key}", "--quiet")
            new = next(pid for pid, (kind, name) in self._protectors().items()
                       if pid not in before and kind == "raw key" and name == PROTECTOR)
            try:
                self._fswrite("metadata", "add-protector-to-policy", f"--protector={mount}:{new}",
                              f"--policy={mount}:{policy}", f"--key={key}", f"--unlock-with={mount}:{unlock_with}",
                              "--quiet", stdin=secret.rstrip("\n") + "\n")
                # /var/lib/phyllome is shared (the first boot's result is readable there): the credential itself
                # is root's alone.
                self.credential.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
                self.runner.run(["systemd-creds", "encrypt", *self.seal, f"--name={CREDENTIAL_NAME}", str(key),
                                 str(self.credential)])
                os.chmod(self.credential, 0o600)
            except BaseException:
                self._fswrite("metadata", "destroy", f"--protector={mount}:{new}", "--force", "--quiet", check=False)
                raise
        log.info("the TPM protector %s was enrolled (sealed to PCR %s)", new, PCRS)
        return new

    def unlock(self) -> str | None:
        """Unseal into a private tmpfs, unlock, unmount. None when the store is unlocked; else why not, in one
        line."""
        status = self.status()
        if not status.enrolled:
            return "the VM store has no TPM protector"
        deadline = time.monotonic() + TPM_WAIT
        while status.tpm is not None and time.monotonic() < deadline:  # the TPM's driver may load after us
            time.sleep(0.25)
            status = self.status()
        if status.tpm is not None:
            return status.tpm
        with private_tmpfs(self.runner) as private:
            key = private / "key"
            unsealed = self.runner.run(["systemd-creds", "decrypt", f"--name={CREDENTIAL_NAME}",
                                        str(self.credential), str(key)], check=False)
            if not unsealed.ok:
                log.debug("systemd-creds: %s", unsealed.stderr.strip()[-500:])
                return REFUSED
            result = self._fscrypt("unlock", str(self.store), f"--unlock-with={self.mountpoint}:{status.protector}",
                                   f"--key={key}", "--quiet", check=False)
        if result.ok:
            return None
        return f"fscrypt refused the TPM's key: {(result.stderr.strip().splitlines() or ['?'])[-1]}"

    def remove(self) -> None:
        """Remove the tpm protector from the policy and the filesystem, and the sealed key."""
        status = self.status()
        mount = str(self.mountpoint)
        if status.protector:
            policy = self._policy()
            self._fswrite("metadata", "remove-protector-from-policy", f"--protector={mount}:{status.protector}",
                          f"--policy={mount}:{policy}", "--force", "--quiet", check=False)
            self._fswrite("metadata", "destroy", f"--protector={mount}:{status.protector}", "--force", "--quiet")
        with contextlib.suppress(FileNotFoundError):
            self.credential.unlink()
