"""The UEFI boot harness itself, with no installer: OVMF -> GRUB (removable path on the ESP) -> Debian's kernel ->
a busybox init that prompts on the serial console; the test answers, the guest echoes the answer and powers off."""

from __future__ import annotations

import shutil

import pytest

from tests.boot.harness import OVMF_CODE, OVMF_VARS, StageFailed, UefiMachine
from tests.boot.smoke_disk import MARKER, PROMPT, smoke_disk

pytestmark = [
    pytest.mark.boot,
    pytest.mark.root,  # the kernel and the disk are cached under /var/cache
    pytest.mark.skipif(not (shutil.which("qemu-system-x86_64") and OVMF_CODE.exists() and OVMF_VARS.exists()),
                       reason="needs qemu-system-x86 and ovmf"),
]


def test_uefi_disk_boots_and_answers_on_the_serial_console(tmp_path):
    disk = smoke_disk()
    with UefiMachine(disk, tmp_path, memory_mib=512, snapshot=True) as machine:
        machine.expect("PHYLLOME-SMOKE-GRUB", 120, "firmware -> GRUB")
        machine.expect(r"PHYLLOME-SMOKE-INIT 6\.", 180, "kernel -> init")
        machine.expect(PROMPT, 30, "prompt")
        machine.send_line("hello from the test")
        machine.expect(rf"{MARKER} \[hello from the test\]", 30, "answer read")
        assert machine.wait_exit(60, "power off") == 0
        print("stages:", machine.timings())
    assert f"{MARKER} [hello from the test]" in (tmp_path / "serial.log").read_text()
    assert (tmp_path / "OVMF_VARS.fd").stat().st_size == OVMF_VARS.stat().st_size  # a copy, never the original


def test_a_stage_that_never_comes_fails_with_the_end_of_the_console(tmp_path):
    with UefiMachine(smoke_disk(), tmp_path, memory_mib=512, snapshot=True) as machine:
        machine.expect(PROMPT, 300, "prompt")
        with pytest.raises(StageFailed) as failed:
            machine.expect("THIS NEVER SHOWS", 3, "never")
    message = str(failed.value)
    assert "boot stage 'never' failed" in message
    assert PROMPT in message  # the end of the serial console is shown


def test_secure_boot_firmware_refuses_an_unsigned_grub(tmp_path):
    """The check behind the Secure Boot boots is real: the same firmware and keys refuse the smoke disk's unsigned
    GRUB (it never prints its marker, and OVMF says why)."""
    with UefiMachine(smoke_disk(), tmp_path, memory_mib=512, snapshot=True, secure_boot=True) as machine:
        machine.expect(r"failed to load Boot\d+ .*: Access Denied", 240, "the firmware refuses GRUB")
    assert "PHYLLOME-SMOKE-GRUB" not in (tmp_path / "serial.log").read_text()
