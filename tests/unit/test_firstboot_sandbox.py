"""``phyllome-firstboot --sandbox`` (issue 21): the first boot on a sandbox root that reads this machine's hardware
and writes only below the sandbox; kernel arguments said, never applied; commands that would change this machine
refuse --sandbox. The screens' walk to Done on the embedded libvirt was run in tmux (see docs/firstboot.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from firstboot import state
from firstboot.sandbox import LINKED, SandboxSession, clean, prepare, sandbox_session
from phyllome_installer.cli import firstboot_main
from phyllome_installer.core.errors import EXIT_BAD_INPUT
from phyllome_installer.core.runner import RecordingRunner


def test_the_sandbox_reads_this_machine_and_writes_only_below_itself(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ))  # sandbox_session sets swtpm's environment
    base = tmp_path / "sb"
    host_profile = Path("/") / state.PROFILE
    before = host_profile.stat().st_mtime_ns if host_profile.exists() else None
    runner = RecordingRunner()
    session = sandbox_session(runner, base)
    assert session.root == base / "root" and session.store == base / "images"
    assert session.uri == f"qemu:///embed?root={base / 'lv'}" and (base / "lv/etc/qemu.conf").is_file()
    assert all(os.readlink(session.root / name) == f"/{name}" for name in LINKED)
    assert (session.root / state.MARKER).is_file()  # every run is a first boot
    checks = session.checks()
    cpu = next(c for c in checks if c.id == "cpu-virt")
    assert ("vmx" in Path("/proc/cpuinfo").read_text() or "svm" in Path("/proc/cpuinfo").read_text()) == \
        (cpu.status == "PASS")  # this machine's processor, read through the sandbox's proc link
    assert (session.root / state.PROFILE).is_file()
    assert (host_profile.stat().st_mtime_ns if host_profile.exists() else None) == before
    said = session.apply_kargs(["intel_iommu=on", "iommu=pt"])
    assert "not applied" in said and session.pending_reboot
    assert not any("ostree" in " ".join(argv) for argv in runner.argvs)
    assert isinstance(session, SandboxSession)
    again = prepare(base)  # a second run keeps what is there and puts the marker back
    assert again[0] == session.root
    clean(base)
    assert not base.exists() and Path("/proc/cpuinfo").exists()  # the links were removed, never followed


def test_a_sandbox_where_a_file_or_a_link_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    for base in (tmp_path / "file", tmp_path / "link"):
        with pytest.raises(ValueError, match="not a directory"):
            prepare(base)
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("argv", [["run"], ["vm", "create", "--os", "win11", "--dry-run"], ["unlock"]])
def test_commands_that_would_change_this_machine_refuse_the_sandbox(tmp_path, capsys, argv):
    code = firstboot_main(["--sandbox", "--log", str(tmp_path / "log"), *argv, "--store", str(tmp_path / "s"),
                           *(["--root", str(tmp_path)] if argv[0] != "vm" else [])])
    assert code == EXIT_BAD_INPUT
    assert "phyllome-firstboot --sandbox" in capsys.readouterr().err
