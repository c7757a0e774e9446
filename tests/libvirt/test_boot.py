"""The primary VM really boots: a tiny installation ISO (Debian's kernel, a busybox initramfs that prints a marker on
ttyS0 and powers off) as the CD of a VM created through this code, with its disk in an fscrypt-encrypted VM store
(ext4 -O encrypt on a loop device; the host kernel cannot mount F2FS). QEMU under TCG here."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from firstboot import libvirt_backend as lb
from firstboot.checks import Machine
from firstboot.osinfo import Catalogue
from firstboot.primary import build
from firstboot.vm import Request
from phyllome_installer.core.errors import UserError
from phyllome_installer.core.runner import SubprocessRunner
from phyllome_installer.core.secrets import Redactor
from storage.fscrypt import Fscrypt
from tests.libvirt import embed
from tests.libvirt.tiny_iso import MARKER, tiny_iso
from tests.loopdev import loop_image, mounted, sh

pytestmark = [pytest.mark.libvirt, pytest.mark.root]
PASSPHRASE = "canary-pass-9Zt4-primary-vm"
GiB = 1 << 30
DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def encrypted_store(tmp_path, install_log):
    with loop_image(tmp_path / "fs.img", "64M") as device:
        sh("mkfs.ext4", "-q", "-O", "encrypt", device)
        with mounted(device, tmp_path / "root") as root:
            redactor = Redactor()
            tool = Fscrypt(SubprocessRunner(redactor), root / "etc" / "fscrypt.conf", redactor=redactor)
            tool.write_config()
            tool.setup(root)
            store = root / "var/lib/libvirt/images"
            tool.encrypt(store, root, PASSPHRASE, recovery=False)
            yield tool, store
            if lb.store_state(store).unlocked:
                tool.lock(store)


def test_the_tiny_iso_boots_as_the_primary_vm_from_an_encrypted_store(libvirt_conn, embedded, encrypted_store):
    tool, store = encrypted_store
    state = lb.store_state(store)
    assert state.encrypted and state.unlocked
    iso = tiny_iso()
    host = lb.probe(libvirt_conn)
    serial = store / "tiny.serial.log"
    request = Request(name="tiny", store=str(store), memory=2 * GiB, cpus=1, iso=str(iso), serial_log=str(serial))
    no_gpu = Machine(DATA / "machines/this-ci-vm")
    planned = build(request, "linux2022", catalogue=Catalogue(), host=host, machine=no_gpu)
    result = lb.Backend(libvirt_conn, SubprocessRunner()).create(planned.spec, start=True, host=host)
    assert "started" in result.steps
    dom = libvirt_conn.lookupByName("tiny")
    deadline = time.monotonic() + 300
    while dom.isActive() and time.monotonic() < deadline:
        time.sleep(1)
    log = serial.read_text(errors="replace") if serial.exists() else ""
    assert MARKER in log, f"no marker on the serial console; its tail:\n{log[-2000:]}"
    assert not dom.isActive()  # the guest powered itself off
    assert (store / "tiny.qcow2").is_file() and (store / "tiny_VARS.fd").is_file()
    assert sorted(os.listdir(store)) == ["tiny.qcow2", "tiny.serial.log", "tiny_VARS.fd"]
    assert embed.clean(libvirt_conn, embedded[2]) == ["tiny"]


def test_nothing_is_created_while_the_store_is_locked(libvirt_conn, encrypted_store):
    tool, store = encrypted_store
    (store / "keep.txt").write_text("data")
    tool.lock(store)
    state = lb.store_state(store)
    assert state.encrypted and not state.unlocked
    before = sorted(os.listdir(store))
    host = lb.probe(libvirt_conn)
    planned = build(Request(name="locked", store=str(store), memory=GiB), "fedora37", catalogue=Catalogue(),
                    host=host, machine=Machine(DATA / "machines/this-ci-vm"))
    with pytest.raises(UserError, match="locked") as info:
        lb.Backend(libvirt_conn, SubprocessRunner()).create(planned.spec, host=host)
    assert "unlock" in str(info.value)
    assert sorted(os.listdir(store)) == before and libvirt_conn.listAllDomains() == []
