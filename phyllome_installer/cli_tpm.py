"""``phyllome-firstboot tpm status|enrol|remove``, and the TPM's part in ``unlock`` (firstboot/tpm.py does the work).

At every boot the unlock first asks the TPM (when a key was sealed); when it refuses, the reason is one line and the
passphrase prompt follows, as without a TPM. At the first real boot (the first-boot marker still there) with
``[firstboot] tpm_unlock = true``, the passphrase that just unlocked the store also enrols the TPM: sealing
happens under the installed system's own boot chain, never the live medium's.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .core.errors import EXIT_BAD_INPUT, EXIT_FAILED, PhyllomeError, UserError
from .core.facts import FIRSTBOOT_MARKER
from .core.runner import CommandError, Runner
from .core.secrets import REDACTOR

log = logging.getLogger("phyllome.tpm")
ENROLLED = ("The TPM will unlock the VM store at the next boots, as long as Secure Boot's state stays the same "
            "(PCR 7); the passphrase and the recovery code keep working.")


def tpm_for(runner: Runner, unlocker, root: Path):
    from firstboot.tpm import Tpm

    return Tpm(runner, store=unlocker.store, mountpoint=unlocker.mountpoint, root=root,
               fscrypt_conf=Path(root) / "etc/fscrypt.conf")


def unlock_first(unlocker, tpm, tell):
    """The store unlocked by the TPM (an Outcome), or None: then the passphrase is asked (the reason told)."""
    from firstboot.unlock import Outcome

    if not tpm.credential.exists() or unlocker.state() != "locked":
        return None
    reason = tpm.unlock()
    if reason is None:
        return Outcome("unlocked", f"The VM store {unlocker.store} is unlocked by the TPM.")
    tell(f"{reason}. Type the passphrase or the recovery code.")
    return None


def enrol_if_wanted(root: Path, unlocker, tpm, tell) -> None:
    """At the first real boot, with [firstboot] tpm_unlock: enrol with the secret that just opened the store."""
    if unlocker.opened is None or not (Path(root) / FIRSTBOOT_MARKER).exists():
        return
    from .answers import load_firstboot  # pydantic: loaded at the first boot only, never at each unlock

    try:
        wanted = load_firstboot(None, root).tpm_unlock
    except UserError:
        return  # the first boot itself reports a bad [firstboot]
    if not wanted or tpm.status().enrolled:
        return
    protector, secret = unlocker.opened
    try:
        tpm.enrol(secret, protector)
    except (PhyllomeError, CommandError) as exc:
        tell(f"The TPM was not enrolled: {_why(exc)}. The passphrase unlocks the VM store; enrol later with: "
             "phyllome-firstboot tpm enrol")
        return
    tell(ENROLLED)


def _why(exc: Exception) -> str:
    """One line: the tool's own last words for a failed command, else the message."""
    tail = getattr(exc, "output_tail", "").strip().splitlines()
    return tail[-1].strip() if tail else str(exc).splitlines()[0]


def cmd_tpm(args: argparse.Namespace) -> int:
    """``tpm status`` (default), ``tpm enrol`` (asks the passphrase or the recovery code), ``tpm remove``."""
    from firstboot.unlock import Unlocker, ask_on_terminal, normalize

    from .core.runner import SubprocessRunner

    runner = SubprocessRunner()
    unlocker = Unlocker(runner, store=args.store, root=args.root)
    state = unlocker.state()
    if state in ("missing", "not-encrypted", "symlink", "no-config"):
        print(f"phyllome-firstboot: the VM store {args.store} is {state.replace('-', ' ')}: the TPM has nothing to "
              "unlock", file=sys.stderr)
        return EXIT_BAD_INPUT
    tpm = tpm_for(runner, unlocker, args.root)
    status = tpm.status()
    if args.action == "status":
        print(f"TPM 2.0: {status.tpm or 'present'}")
        print(f"VM store {args.store}: {state}; " + (f"the TPM unlocks it (protector {status.protector}, sealed "
              f"to PCR 7 in /{tpm.credential.relative_to(args.root)})" if status.enrolled else "no TPM protector"))
        return 0
    if args.action == "remove":
        tpm.remove()
        print("The TPM no longer unlocks the VM store; the passphrase and the recovery code do.")
        return 0
    if status.tpm is not None:
        print(f"phyllome-firstboot: {status.tpm}: nothing was changed", file=sys.stderr)
        return EXIT_BAD_INPUT
    if state != "unlocked":
        print("phyllome-firstboot: the VM store is locked: unlock it first (phyllome-firstboot unlock), then "
              "enrol", file=sys.stderr)
        return EXIT_BAD_INPUT
    secret = normalize(ask_on_terminal()("Passphrase or recovery code of the VM store (to seal it to the TPM):", 1)
                       or "")
    protectors = {name: pid for pid, name in unlocker.tool.status(unlocker.store).protectors.items()}
    from firstboot.unlock import as_recovery_code
    from storage.fscrypt import PROTECTOR_NAME, RECOVERY_NAME

    REDACTOR.add(secret)
    code = as_recovery_code(secret)
    protector = protectors.get(RECOVERY_NAME if code else PROTECTOR_NAME)
    if not secret or protector is None:
        print("phyllome-firstboot: no passphrase given: nothing was changed", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        tpm.enrol(code or secret, protector)
    except CommandError as exc:
        if "incorrect" in str(exc):
            print("phyllome-firstboot: wrong passphrase or recovery code: nothing was changed", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"phyllome-firstboot: the TPM was not enrolled: {_why(exc)}", file=sys.stderr)
        return EXIT_FAILED
    print(ENROLLED)
    return 0
