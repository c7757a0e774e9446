"""The TPM protector on a real fscrypt store (ext4 -O encrypt on a loop device), with systemd-creds sealing.

This machine has no TPM: the sealing is systemd-creds' host key here (``--with-key=host``, the names say so), the
same command and credential format; the TPM itself (swtpm, PCR 7, Secure Boot on and off) is proven by the boot
tier. What is real here: the raw_key protector, the policy it is added to, the unlock through the pipe, the
refusals, the removal, and that the key is found nowhere but in the sealed credential.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from firstboot.tpm import CREDENTIAL, Tpm, present
from phyllome_installer.core.errors import UserError
from phyllome_installer.core.runner import RecordingRunner, SubprocessRunner
from phyllome_installer.core.secrets import Redactor
from storage.fscrypt import RECOVERY_HASH_COSTS, Fscrypt
from tests.loopdev import loop_image, mounted, sh

pytestmark = pytest.mark.root
PASSPHRASE = "canary-pass-tpm-7Kd2"
HOST_KEY = ("--with-key=host",)


@pytest.fixture
def store(tmp_path):
    with loop_image(tmp_path / "fs.img", "64M") as device:
        sh("mkfs.ext4", "-q", "-O", "encrypt", device)
        with mounted(device, tmp_path / "root") as root:
            tool = Fscrypt(SubprocessRunner(Redactor()), root / "etc/fscrypt.conf", redactor=Redactor())
            tool.write_config(RECOVERY_HASH_COSTS)  # cheap derivations: this is not what is tested here
            tool.setup(root)
            directory = root / "var/lib/libvirt/images"
            protected = tool.encrypt(directory, root, PASSPHRASE)
            (directory / "disk.img").write_text("guest disk")
            yield tool, root, directory, protected


def _tpm(tool, root, directory, runner=None) -> Tpm:
    return Tpm(runner or SubprocessRunner(), store=directory, mountpoint=root, fscrypt_conf=tool.config, root=root,
               seal=HOST_KEY)


def test_enrolled_with_the_host_key_standing_in_for_the_tpm_it_unlocks_without_a_passphrase(store):
    tool, root, directory, protected = store
    recorder = RecordingRunner(delegate=SubprocessRunner())
    tpm = _tpm(tool, root, directory, recorder)
    protector = tpm.enrol(PASSPHRASE, protected.protector)
    assert tpm.status().enrolled and tpm.status().protector == protector
    assert oct((root / CREDENTIAL).stat().st_mode & 0o777) == "0o600"
    tool.lock(directory)
    assert not tool.status(directory).unlocked
    assert tpm.unlock() is None
    assert (directory / "disk.img").read_text() == "guest disk"
    # The passphrase still unlocks, and the recovery code; the key went through no argv and no file left behind.
    tool.lock(directory)
    tool.unlock(directory, root, PASSPHRASE, protector=protected.protector)
    tool.lock(directory)
    tool.unlock(directory, root, protected.recovery_code, protector=protected.recovery_protector)
    assert all(PASSPHRASE not in " ".join(argv) for argv in recorder.argvs)
    assert not any(p.is_file() for p in Path("/run/phyllome").glob("tpm-*/**/*"))
    assert not [m for m in Path("/proc/mounts").read_text().splitlines() if "/run/phyllome/tpm-" in m]


def test_a_damaged_or_foreign_credential_falls_back_and_leaves_the_store_locked(store, tmp_path):
    tool, root, directory, protected = store
    tpm = _tpm(tool, root, directory)
    tpm.enrol(PASSPHRASE, protected.protector)
    tool.lock(directory)
    sealed = (root / CREDENTIAL).read_bytes()
    (root / CREDENTIAL).write_bytes(sealed[:40] + bytes(b ^ 0xFF for b in sealed[40:80]) + sealed[80:])
    assert "did not release" in (tpm.unlock() or "")
    assert not tool.status(directory).unlocked
    # Another machine's credential (sealed with another key, for the same name): refused the same way.
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    sh("systemd-creds", "encrypt", "--with-key=host", "--name=other-purpose", str(other), str(root / CREDENTIAL))
    assert "did not release" in (tpm.unlock() or "")
    assert not tool.status(directory).unlocked
    (root / CREDENTIAL).unlink()
    assert tpm.unlock() == "the VM store has no TPM protector"


def test_enrolling_with_a_wrong_secret_leaves_no_protector_and_no_credential(store):
    tool, root, directory, protected = store
    tpm = _tpm(tool, root, directory)
    with pytest.raises(Exception):  # noqa: B017 - fscrypt's refusal, as a command failure
        tpm.enrol("not the passphrase", protected.protector)
    assert not tpm.status().protector and not (root / CREDENTIAL).exists()


def test_re_enrolling_replaces_and_remove_takes_everything_back(store):
    tool, root, directory, protected = store
    tpm = _tpm(tool, root, directory)
    first = tpm.enrol(PASSPHRASE, protected.protector)
    second = tpm.enrol(protected.recovery_code, protected.recovery_protector)
    assert first != second and tpm.status().protector == second
    tpm.remove()
    assert not tpm.status().protector and not (root / CREDENTIAL).exists()
    assert set(tool.status(directory).protectors.values()) == {"vmstore", "recovery"}


def test_without_a_tpm_enrolment_is_refused_with_what_to_do(store, tmp_path):
    tool, root, directory, protected = store
    tpm = Tpm(SubprocessRunner(), store=directory, mountpoint=root, fscrypt_conf=tool.config, root=tmp_path)
    assert present(tmp_path) == "this machine has no TPM 2.0 (/dev/tpmrm0 is missing)"
    with pytest.raises(UserError, match="no TPM 2.0"):
        tpm.enrol(PASSPHRASE, protected.protector)


# ---------------------------------------------------------------------------------------------- the unlock's part


def _unlocker(root, directory):
    from firstboot.unlock import Unlocker

    return Unlocker(SubprocessRunner(), store=directory, root=root, mountpoint=root)


def test_the_first_real_boot_enrols_with_the_passphrase_that_unlocked_and_later_boots_need_none(store):
    from phyllome_installer.cli_tpm import enrol_if_wanted, unlock_first

    tool, root, directory, protected = store
    (root / "etc/phyllome").mkdir(parents=True)
    (root / "etc/phyllome/firstboot").write_text("installed-by=test\n")
    (root / "etc/phyllome/firstboot.toml").write_text("[firstboot]\ntpm_unlock = true\n")
    tool.lock(directory)
    told: list[str] = []
    unlocker = _unlocker(root, directory)
    tpm = _tpm(tool, root, directory)
    assert unlock_first(unlocker, tpm, told.append) is None and told == []  # nothing sealed yet: the prompt
    assert unlocker.try_secret(PASSPHRASE)  # what the prompt does with the typed passphrase
    enrol_if_wanted(root, unlocker, tpm, told.append)
    assert tpm.status().enrolled and "The TPM will unlock the VM store" in told[-1]
    # The next boot: no prompt.
    tool.lock(directory)
    outcome = unlock_first(_unlocker(root, directory), tpm, told.append)
    assert outcome is not None and outcome.state == "unlocked" and "unlocked by the TPM" in outcome.message
    assert (directory / "disk.img").read_text() == "guest disk"
    # A boot where the TPM refuses: one line with the reason, then the prompt; the store stays locked meanwhile.
    tool.lock(directory)
    (root / CREDENTIAL).write_bytes((root / CREDENTIAL).read_bytes()[:-40] + os.urandom(40))
    assert unlock_first(_unlocker(root, directory), tpm, told.append) is None
    assert "did not release" in told[-1] and told[-1].endswith("Type the passphrase or the recovery code.")
    assert not tool.status(directory).unlocked


def test_no_enrolment_after_the_first_boot_or_without_tpm_unlock(store):
    from phyllome_installer.cli_tpm import enrol_if_wanted

    tool, root, directory, protected = store
    (root / "etc/phyllome").mkdir(parents=True)
    (root / "etc/phyllome/firstboot.toml").write_text("[firstboot]\ntpm_unlock = true\n")
    tool.lock(directory)
    unlocker = _unlocker(root, directory)
    assert unlocker.try_secret(PASSPHRASE)
    told: list[str] = []
    enrol_if_wanted(root, unlocker, _tpm(tool, root, directory), told.append)  # no marker: the first boot is done
    (root / "etc/phyllome/firstboot").write_text("installed-by=test\n")
    (root / "etc/phyllome/firstboot.toml").write_text("[firstboot]\ntpm_unlock = false\n")
    enrol_if_wanted(root, unlocker, _tpm(tool, root, directory), told.append)
    assert told == [] and not _tpm(tool, root, directory).status().protector


def test_tpm_enrol_without_a_tpm_or_with_the_store_locked_is_exit_2_with_what_to_do(store, capsys):
    from phyllome_installer.cli import firstboot_main

    tool, root, directory, protected = store
    code = firstboot_main(["tpm", "enrol", "--store", str(directory), "--root", str(root), "--log", "/dev/null"])
    assert code == 2 and "no TPM 2.0" in capsys.readouterr().err
    tool.lock(directory)
    (root / "dev").mkdir()
    (root / "dev/tpmrm0").touch()  # a TPM is said to be there: the locked store is what stops it
    code = firstboot_main(["tpm", "enrol", "--store", str(directory), "--root", str(root), "--log", "/dev/null"])
    assert code == 2 and "unlock it first" in capsys.readouterr().err
    assert firstboot_main(["tpm", "status", "--store", str(directory), "--root", str(root),
                           "--log", "/dev/null"]) == 0
    assert "no TPM protector" in capsys.readouterr().out
