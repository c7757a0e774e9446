"""``phyllome-firstboot --sandbox`` (issue 21): the first boot on a sandbox root that reads this machine's hardware
and writes only below the sandbox; kernel arguments said, never applied; commands that would change this machine
refuse --sandbox. Its encrypted store and the walk from unlock to Done: tests/storage/test_firstboot_sandbox_walk.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from firstboot import state
from firstboot.sandbox import LINKED, STORE_FS, SandboxSession, clean, new_passphrase, prepare
from phyllome_installer.cli import firstboot_main
from phyllome_installer.core.errors import EXIT_BAD_INPUT
from phyllome_installer.core.runner import RecordingRunner


def test_the_sandbox_reads_this_machine_and_writes_only_below_itself(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ))  # sandbox_session sets swtpm's environment
    base = tmp_path / "sb"
    host_profile = Path("/") / state.PROFILE
    before = host_profile.stat().st_mtime_ns if host_profile.exists() else None
    runner = RecordingRunner()
    root, store, uri, env = prepare(base)
    session = SandboxSession(runner, root=root, uri=uri, store=store)
    assert session.root == base / "root" and session.store == base / STORE_FS / "images"
    assert session.uri == f"qemu:///embed?root={base / 'lv'}" and (base / "lv/etc/qemu.conf").is_file()
    assert env["XDG_CONFIG_HOME"] == str(base / "lv/xdg")
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
    (base / "lv/etc/qemu/desktop.xml").parent.mkdir(parents=True)
    (base / "lv/etc/qemu/desktop.xml").write_text("<domain/>")
    (session.root / state.MARKER).unlink()
    again = prepare(base)  # a second run keeps the root, puts the marker back and starts libvirt empty
    assert again[0] == session.root and (session.root / state.MARKER).is_file()
    assert not (base / "lv/etc/qemu/desktop.xml").exists() and (base / "lv/etc/qemu.conf").is_file()
    session.close()  # nothing to release: no store was attached
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


def test_the_sandbox_passphrase_is_new_each_time_and_typeable():
    seen = {new_passphrase() for _ in range(50)}
    assert len(seen) == 50
    for phrase in seen:
        assert phrase.startswith("sandbox-") and len(phrase) == 25 and phrase.isascii()
        assert all(c.islower() or c.isdigit() or c == "-" for c in phrase)
        assert not set(phrase.removeprefix("sandbox-")) & set("lo01")  # nothing to misread from a terminal


def test_clean_refuses_while_the_store_is_mounted(tmp_path, monkeypatch):
    (tmp_path / STORE_FS).mkdir()
    mounted = str(tmp_path / STORE_FS)
    monkeypatch.setattr(os.path, "ismount", lambda path: str(path) == mounted)  # mock: mounting needs root
    with pytest.raises(ValueError, match="is mounted"):
        clean(tmp_path)
    assert (tmp_path / STORE_FS).is_dir()


def test_close_releases_the_store_even_after_a_stop_request_and_only_once(tmp_path):
    import contextlib

    from phyllome_installer.core.interrupt import Stop
    from phyllome_installer.core.runner import SubprocessRunner

    stop = Stop()
    runner = SubprocessRunner(stop=stop)
    session = SandboxSession(runner, root=tmp_path, uri="test:///default", store=tmp_path / "images")
    ran = []
    session._stack = contextlib.ExitStack()
    session._stack.callback(lambda: ran.append(runner.run(["true"]).ok))  # the lock, unmount and detach
    stop.request("SIGTERM")
    session.close()
    session.close()
    assert ran == [True]


def test_the_secrets_are_said_once_on_the_terminal_without_waiting_on_a_pipe(tmp_path, capsys):
    import io

    from phyllome_installer.cli_firstboot import _say_the_secrets

    session = SandboxSession(RecordingRunner(), root=tmp_path, store=tmp_path / "images")
    session.passphrase, session.recovery_code = new_passphrase(), "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567"
    _say_the_secrets(session, io.StringIO(""))  # not a terminal: the screens open at once
    out = capsys.readouterr().out
    assert out.count(session.passphrase) == 1 and out.count(session.recovery_code) == 1
    assert "Press Enter" not in out
