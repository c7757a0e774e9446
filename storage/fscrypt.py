"""fscrypt for the VM store: v2 policies, a passphrase protector and a generated recovery protector.

The ``fscrypt`` tool (0.3.x) does the work. Its configuration is the target's own ``/etc/fscrypt.conf``, which
this module writes and passes to every call with ``FSCRYPT_CONF``, so the live system's ``/etc`` is never read
or changed (``fscrypt setup`` without a mount point would also create ``/.fscrypt`` on the live root).

Secrets go on stdin only and are registered with the redactor before any command runs. The recovery code is
generated here, returned once to the caller to show the user, and never logged or written anywhere.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from phyllome_installer.core.errors import InstallFailure, UserError
from phyllome_installer.core.runner import Runner
from phyllome_installer.core.secrets import REDACTOR, Redactor
from phyllome_installer.core.targetfs import TargetFiles

log = logging.getLogger("phyllome.storage.fscrypt")

#: Argon2id costs for passphrase hashing: about a second on a current laptop, 128 MiB.
HASH_COSTS = {"time": "16", "memory": "131072", "parallelism": "2"}
#: Argon2id costs for the recovery protector. Its code is 160 random bits: stretching it adds nothing against a
#: guesser (as systemd-cryptenroll sets a minimal PBKDF for its recovery keys), and a full-cost derivation here
#: would be paid twice per install (creating the protector, adding it to the policy). fscrypt keeps each
#: protector's costs in its metadata, so unlocking uses these too.
RECOVERY_HASH_COSTS = {"time": "1", "memory": "8192", "parallelism": "1"}
PROTECTOR_NAME = "vmstore"
RECOVERY_NAME = "recovery"


def config_text(hash_costs: dict[str, str] | None = None, *, base: Path | None = None) -> str:
    """/etc/fscrypt.conf for v2 policies (AES-256-XTS contents, AES-256-CTS names).

    ``base``: an existing fscrypt.conf to copy, with only its hash costs replaced.
    """
    if base is not None:
        config = json.loads(Path(base).read_text())
        config["hash_costs"] = hash_costs or HASH_COSTS
        return json.dumps(config, indent="\t") + "\n"
    return json.dumps({
        "source": "custom_passphrase",
        "hash_costs": hash_costs or HASH_COSTS,
        "options": {"padding": "32", "contents": "AES_256_XTS", "filenames": "AES_256_CTS", "policy_version": "2"},
        "use_fs_keyring_for_v1_policies": False,
        "allow_cross_user_metadata": False,
    }, indent="\t") + "\n"


def recovery_code() -> str:
    """A random recovery code: 160 bits as eight groups of four base32 characters."""
    raw = base64.b32encode(secrets.token_bytes(20)).decode()
    return "-".join(raw[i : i + 4] for i in range(0, 32, 4))


@dataclass(frozen=True)
class Status:
    encrypted: bool
    unlocked: bool = False
    policy: str = ""
    protectors: dict[str, str] = field(default_factory=dict)
    """protector id -> its name."""


@dataclass(frozen=True)
class Protected:
    """The result of encrypting a directory. ``recovery_code`` is to be shown once, then forgotten."""

    directory: str
    policy: str
    protector: str
    recovery_protector: str = ""
    recovery_code: str = field(default="", repr=False)


def _line(secret: str) -> str:
    if "\n" in secret or "\r" in secret:
        raise UserError("a passphrase cannot contain a line break")
    return secret + "\n"


class Fscrypt:
    """fscrypt on one filesystem, configured by ``config`` (the target's /etc/fscrypt.conf)."""

    def __init__(self, runner: Runner, config: Path, *, redactor: Redactor = REDACTOR,
                 files: TargetFiles | None = None) -> None:
        """``files``: writes the configuration; in a dry run (the runner only prints) it shows it instead."""
        self.runner = runner
        self.config = Path(config)
        self.redactor = redactor
        self.env = {"FSCRYPT_CONF": str(self.config)}
        self.files = files or TargetFiles()

    def write_config(self, hash_costs: dict[str, str] | None = None) -> Path:
        return self.files.write(self.config, config_text(hash_costs), 0o644)

    def setup(self, mountpoint: Path) -> None:
        """Create the filesystem's /.fscrypt metadata (once; a second call is a no-op)."""
        if not self.files.dry and (Path(mountpoint) / ".fscrypt").is_dir():
            return
        self.runner.run(["fscrypt", "setup", str(mountpoint), "--quiet"], env=self.env)

    def _run(self, argv: list[str], stdin: str | None = None, check: bool = True):
        return self.runner.run(["fscrypt", *argv], stdin=stdin, env=self.env, check=check)

    def encrypt(self, directory: Path, mountpoint: Path, passphrase: str, *, recovery: bool = True) -> Protected:
        """Encrypt an empty directory with a passphrase protector, and a recovery protector when asked."""
        self.redactor.add(passphrase)
        directory = Path(directory)
        if self.files.dry:
            return self._encrypt_dry(directory, mountpoint, recovery)
        directory.mkdir(parents=True, exist_ok=True)
        if any(directory.iterdir()):
            raise InstallFailure(f"{directory} is not empty; fscrypt encrypts empty directories only")
        self._run(["encrypt", str(directory), "--source=custom_passphrase", f"--name={PROTECTOR_NAME}",
                   "--quiet"], _line(passphrase))
        status = self.status(directory)
        protector = next(pid for pid, name in status.protectors.items() if name == PROTECTOR_NAME)
        if not recovery:
            return Protected(str(directory), status.policy, protector)
        code = recovery_code()
        self.redactor.add(code)
        with tempfile.TemporaryDirectory(prefix="phyllome-fscrypt-") as private:
            recovery_config = Path(private) / "fscrypt.conf"  # the target's own, with the recovery costs
            recovery_config.write_text(config_text(RECOVERY_HASH_COSTS, base=self.config))
            self.runner.run(["fscrypt", "metadata", "create", "protector", str(mountpoint),
                             "--source=custom_passphrase", f"--name={RECOVERY_NAME}", "--quiet"],
                            stdin=_line(code), env={"FSCRYPT_CONF": str(recovery_config)})
        recovery_id = self._protector_named(mountpoint, RECOVERY_NAME, exclude=set(status.protectors))
        # fscrypt asks for the new protector's passphrase (cheap: the recovery costs), then for one that unlocks
        # the policy (the passphrase: the second and last full-cost derivation of the install).
        self._run(["metadata", "add-protector-to-policy", f"--protector={mountpoint}:{recovery_id}",
                   f"--policy={mountpoint}:{status.policy}", "--quiet"], _line(code) + _line(passphrase))
        return Protected(str(directory), status.policy, protector, recovery_id, code)

    def _encrypt_dry(self, directory: Path, mountpoint: Path, recovery: bool) -> Protected:
        """What :meth:`encrypt` runs, with the ids that fscrypt will print shown as placeholders."""
        self.files.mkdir(directory)
        self._run(["encrypt", str(directory), "--source=custom_passphrase", f"--name={PROTECTOR_NAME}",
                   "--quiet"], "<passphrase>\n")
        self._run(["status", str(directory)])
        if recovery:
            self.files.note("use a temporary copy of fscrypt.conf with the recovery protector's hash costs")
            self._run(["metadata", "create", "protector", str(mountpoint), "--source=custom_passphrase",
                       f"--name={RECOVERY_NAME}", "--quiet"], "<recovery code>\n")
            self._run(["status", str(mountpoint)])
            self._run(["metadata", "add-protector-to-policy", f"--protector={mountpoint}:<recovery-protector>",
                       f"--policy={mountpoint}:<policy>", "--quiet"], "<recovery code>\n<passphrase>\n")
        return Protected(str(directory), "<policy>", "<protector>")

    def _protector_named(self, mountpoint: Path, name: str, exclude: set[str]) -> str:
        out = self._run(["status", str(mountpoint)]).stdout
        for pid, described in re.findall(r"^([0-9a-f]{16})\s+\S+\s+custom protector \"(.*)\"$", out, re.MULTILINE):
            if described == name and pid not in exclude:
                return pid
        raise InstallFailure(f"fscrypt did not create the {name} protector on {mountpoint}")

    def status(self, directory: Path) -> Status:
        result = self._run(["status", str(directory)], check=False)
        if not result.ok:
            if "not encrypted" in result.stderr or "not encrypted" in result.stdout:
                return Status(False)
            raise InstallFailure(f"fscrypt status {directory}: {result.stderr.strip() or result.stdout.strip()}")
        out = result.stdout
        policy = re.search(r"^Policy:\s+([0-9a-f]+)", out, re.MULTILINE)
        unlocked = re.search(r"^Unlocked:\s+(\w+)", out, re.MULTILINE)
        protectors = dict(re.findall(r"^([0-9a-f]{16})\s+\S+\s+custom protector \"(.*)\"$", out, re.MULTILINE))
        return Status(True, bool(unlocked and unlocked.group(1) == "Yes"), policy.group(1) if policy else "",
                      protectors)

    def lock(self, directory: Path) -> None:
        if self.files.dry or self.status(directory).unlocked:
            self._run(["lock", str(directory)])

    def unlock(self, directory: Path, mountpoint: Path, secret: str, *, protector: str) -> None:
        """Unlock with the passphrase or the recovery code (``protector`` says which protector it opens)."""
        self.redactor.add(secret)
        result = self._run(["unlock", str(directory), f"--unlock-with={mountpoint}:{protector}", "--quiet"],
                           _line(secret), check=False)
        if not result.ok:
            if "incorrect key" in result.stderr:
                raise UserError(f"wrong passphrase or recovery code for {directory}")
            raise InstallFailure(f"fscrypt unlock {directory}: {result.stderr.strip()}")
