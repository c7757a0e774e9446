"""fscrypt for real on an ext4 -O encrypt loop filesystem (this kernel cannot mount F2FS; tests/vm does)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from phyllome_installer.core.errors import UserError
from phyllome_installer.core.runner import SubprocessRunner
from phyllome_installer.core.secrets import Redactor
from storage.fscrypt import Fscrypt, recovery_code
from tests.loopdev import loop_image, mounted, sh

pytestmark = pytest.mark.root
PASSPHRASE = "canary-pass-7Hq2-vmstore"


@pytest.fixture
def fs(tmp_path, install_log):
    with loop_image(tmp_path / "fs.img", "64M") as device:
        sh("mkfs.ext4", "-q", "-O", "encrypt", device)
        with mounted(device, tmp_path / "root") as root:
            redactor = Redactor()
            tool = Fscrypt(SubprocessRunner(redactor), root / "etc" / "fscrypt.conf", redactor=redactor)
            tool.write_config()
            tool.setup(root)
            yield tool, root, install_log[0].path


def test_config_is_v2_and_the_live_root_is_untouched(fs):
    tool, root, _ = fs
    config = json.loads(tool.config.read_text())
    assert config["options"]["policy_version"] == "2"
    assert (root / ".fscrypt").is_dir()
    assert not Path("/.fscrypt").exists()


def test_lock_hides_names_and_contents_unlock_with_passphrase_and_recovery_code(fs):
    tool, root, log_path = fs
    store = root / "ostree/deploy/phyllome/var/lib/libvirt/images"
    protected = tool.encrypt(store, root, PASSPHRASE)
    assert len(protected.recovery_code) == 39 and protected.recovery_code.count("-") == 7
    (store / "win11.qcow2").write_text("guest disk")
    tool.lock(store)
    status = tool.status(store)
    assert status.encrypted and not status.unlocked
    assert set(status.protectors.values()) == {"vmstore", "recovery"}
    names = os.listdir(store)
    assert names and "win11.qcow2" not in names
    with pytest.raises(OSError) as info:
        (store / names[0]).read_text()
    assert info.value.errno == errno.ENOKEY

    tool.unlock(store, root, protected.recovery_code, protector=protected.recovery_protector)
    assert (store / "win11.qcow2").read_text() == "guest disk"
    tool.lock(store)
    tool.unlock(store, root, PASSPHRASE, protector=protected.protector)
    assert (store / "win11.qcow2").read_text() == "guest disk"

    text = log_path.read_text()
    assert "fscrypt encrypt" in text  # the commands are logged ...
    assert PASSPHRASE not in text and protected.recovery_code not in text  # ... their secrets are not
    for path in root.rglob("*"):
        if path.is_file() and os.access(path, os.R_OK) and store not in path.parents:
            data = path.read_bytes()
            assert PASSPHRASE.encode() not in data and protected.recovery_code.encode() not in data


def test_a_wrong_passphrase_fails_cleanly_and_stays_locked(fs):
    tool, root, _ = fs
    store = root / "vms"
    protected = tool.encrypt(store, root, PASSPHRASE, recovery=False)
    assert protected.recovery_code == "" and protected.recovery_protector == ""
    tool.lock(store)
    with pytest.raises(UserError, match="wrong passphrase or recovery code"):
        tool.unlock(store, root, "not-the-passphrase", protector=protected.protector)
    assert not tool.status(store).unlocked


def test_a_directory_that_is_not_empty_is_refused(fs):
    tool, root, _ = fs
    (root / "full").mkdir()
    (root / "full" / "file").write_text("x")
    with pytest.raises(Exception, match="not empty"):
        tool.encrypt(root / "full", root, PASSPHRASE)
    assert not tool.status(root / "full").encrypted


def test_recovery_codes_are_random():
    assert len({recovery_code() for _ in range(50)}) == 50
