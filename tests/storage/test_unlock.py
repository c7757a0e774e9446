"""Unlocking the VM store for real: `phyllome-firstboot unlock` on an fscrypt directory on ext4 -O encrypt.

The store sits below a bind mount, as /var does on an ostree host, so the mount point fscrypt needs (where the
filesystem is mounted whole) is found from /proc/self/mountinfo and not from the store's own path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from firstboot.unlock import Unlocker, store_mountpoint
from phyllome_installer.core.runner import SubprocessRunner
from phyllome_installer.core.secrets import Redactor
from storage.fscrypt import Fscrypt
from tests.loopdev import loop_image, mounted, sh

pytestmark = pytest.mark.root
PASSPHRASE = "canary-unlock-Zq81-vmstore"
FIRSTBOOT = Path(sys.executable).parent / "phyllome-firstboot"
LIGHT = {"time": "1", "memory": "16384", "parallelism": "1"}  # key derivation costs kept low for the tests


@pytest.fixture
def store(tmp_path):
    """(store as the host sees it, the whole filesystem's mount point, root holding etc/fscrypt.conf, recovery)"""
    with loop_image(tmp_path / "fs.img", "64M") as device:
        sh("mkfs.ext4", "-q", "-O", "encrypt", device)
        with mounted(device, tmp_path / "sysroot") as sysroot:
            tool = Fscrypt(SubprocessRunner(Redactor()), sysroot / "etc" / "fscrypt.conf", redactor=Redactor())
            tool.write_config(LIGHT)
            tool.setup(sysroot)
            real_var = sysroot / "ostree/deploy/phyllome/var"
            images = real_var / "lib/libvirt/images"
            protected = tool.encrypt(images, sysroot, PASSPHRASE)
            (images / "desktop.qcow2").write_text("guest disk")
            tool.lock(images)
            var = tmp_path / "var"
            var.mkdir()
            sh("mount", "--bind", str(real_var), str(var))
            try:
                yield var / "lib/libvirt/images", sysroot, protected.recovery_code
            finally:
                subprocess.run(["umount", str(var)], check=False)


def _unlock(store: Path, root: Path, stdin: str, *extra: str, env: dict | None = None, log: Path):
    environ = {k: v for k, v in os.environ.items() if k != "INVOCATION_ID"} | (env or {})
    return subprocess.run([str(FIRSTBOOT), "unlock", "--store", str(store), "--root", str(root), "--log", str(log),
                           *extra], input=stdin, capture_output=True, text=True, env=environ, timeout=120, check=False)


def test_the_mount_point_is_where_the_filesystem_is_mounted_whole(store):
    images, sysroot, _ = store
    assert store_mountpoint(images) == sysroot


def test_right_passphrase_unlocks(store, tmp_path):
    images, sysroot, _ = store
    assert not (images / "desktop.qcow2").exists()
    result = _unlock(images, sysroot, PASSPHRASE + "\n", log=tmp_path / "u.log")
    assert result.returncode == 0, result.stderr
    assert "is unlocked" in result.stdout
    assert (images / "desktop.qcow2").read_text() == "guest disk"
    again = _unlock(images, sysroot, "", log=tmp_path / "u2.log")
    assert again.returncode == 0 and "already unlocked" in again.stdout
    assert PASSPHRASE not in (tmp_path / "u.log").read_text() + result.stdout + result.stderr


def test_the_recovery_code_unlocks_typed_in_lower_case_without_dashes(store, tmp_path):
    images, sysroot, code = store
    typed = code.replace("-", "").lower()
    result = _unlock(images, sysroot, "wrong one\n" + typed + "\n", log=tmp_path / "u.log")
    assert result.returncode == 0, result.stderr
    assert "Wrong passphrase or recovery code. 2 tries left." in result.stderr
    assert (images / "desktop.qcow2").read_text() == "guest disk"
    text = (tmp_path / "u.log").read_text()
    assert code not in text and typed not in text and "fscrypt unlock" in text


def test_three_wrong_tries_leave_it_locked_with_a_clear_message(store, tmp_path):
    images, sysroot, _ = store
    result = _unlock(images, sysroot, "bad 1\nbad 2\nbad 3\n" + PASSPHRASE + "\n", log=tmp_path / "u.log")
    assert result.returncode == 1
    assert "3 wrong tries" in result.stderr and "stays locked" in result.stderr
    assert "phyllome-firstboot unlock" in result.stderr
    assert not (images / "desktop.qcow2").exists()  # the fourth line (right) was never read
    status = Unlocker(SubprocessRunner(), store=images, root=sysroot).state()
    assert status == "locked"


def test_an_empty_answer_skips(store, tmp_path):
    images, sysroot, _ = store
    result = _unlock(images, sysroot, "\n", log=tmp_path / "u.log")
    assert result.returncode == 0 and "Skipped" in result.stdout
    assert not (images / "desktop.qcow2").exists()


def _fake_agent(tmp_path: Path, script: str) -> dict[str, str]:
    """A stand-in systemd-ask-password (a shell script) first on PATH, as if systemd ran the unlock: the env."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemd-ask-password"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "INVOCATION_ID": "0123456789abcdef"}


def test_run_by_systemd_it_asks_through_systemd_ask_password(store, tmp_path):
    images, sysroot, _ = store
    argv_file = tmp_path / "argv"
    env = _fake_agent(tmp_path, f"printf '%s\\n' \"$@\" > {argv_file}\nprintf '%s' '{PASSPHRASE}'\n")
    result = _unlock(images, sysroot, "", env=env, log=tmp_path / "u.log")
    assert result.returncode == 0, result.stderr
    assert (images / "desktop.qcow2").read_text() == "guest disk"
    argv = argv_file.read_text().splitlines()
    assert "--id=phyllome-vmstore" in argv and "--emoji=no" in argv
    assert argv[-1].startswith("Passphrase or recovery code for the VM store")
    assert PASSPHRASE not in (tmp_path / "u.log").read_text()


def test_a_store_that_is_not_encrypted_needs_nothing(tmp_path):
    plain = tmp_path / "images"
    plain.mkdir()
    (tmp_path / "etc").mkdir()
    Fscrypt(SubprocessRunner(), tmp_path / "etc" / "fscrypt.conf").write_config(LIGHT)
    result = _unlock(plain, tmp_path, "", log=tmp_path / "u.log")
    assert result.returncode == 0 and "not encrypted" in result.stdout, result.stderr


async def test_the_first_boot_unlock_screen_unlocks_the_real_store(store, tmp_path):
    """The screen with the real fscrypt: a wrong try, then the recovery code; the store opens."""
    from screens.firstboot.checks import ChecksScreen
    from tests.tui.firstboot_helpers import make_app

    images, sysroot, code = store
    unlocker = Unlocker(SubprocessRunner(), store=images, root=sysroot)
    app = make_app(tmp_path / "fb", unlocker=unlocker)
    async with app.run_test(size=(80, 25)) as pilot:
        await pilot.pause()
        await pilot.press(*"not it", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "2 tries left" in str(app.screen.query_one("#secret-error").render())
        await pilot.press(*code.lower(), "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ChecksScreen)
    assert (images / "desktop.qcow2").read_text() == "guest disk"


# ---------------------------------------------------------------------------------------------- hostile input


def test_guesses_that_appear_in_fscrypts_argv_are_only_wrong_tries(store, tmp_path):
    """The runner refuses an argv that holds a registered secret; a guess travels on stdin and is no secret of
    the process until it proved right, so 'a', '1111' or 'images' (in the store's path) are three wrong tries."""
    images, sysroot, _ = store
    log = tmp_path / "u.log"
    result = _unlock(images, sysroot, "a\n1111\nimages\n", log=log)
    assert result.returncode == 1, result.stderr
    assert "3 wrong tries" in result.stderr and "internal error" not in result.stderr
    assert "refusing" not in result.stderr + log.read_text()
    assert "libvirt/images" in log.read_text()  # the log is not masked to pieces by a wrong 'a'
    right = _unlock(images, sysroot, "images\n" + PASSPHRASE + "\n", log=log)
    assert right.returncode == 0, right.stderr
    assert (images / "desktop.qcow2").read_text() == "guest disk"


@pytest.mark.parametrize("line", ["\ufeff{}\r\n", "{}\r\n", "\ufeff{}\n", "{}"])
def test_crlf_bom_and_unterminated_lines_are_the_passphrase(store, tmp_path, line):
    images, sysroot, _ = store
    environ = {k: v for k, v in os.environ.items() if k != "INVOCATION_ID"}
    result = subprocess.run([str(FIRSTBOOT), "unlock", "--store", str(images), "--root", str(sysroot), "--log",
                             str(tmp_path / "u.log")], input=line.format(PASSPHRASE).encode(), capture_output=True,
                            env=environ, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert (images / "desktop.qcow2").read_text() == "guest disk"


def test_a_closed_stdin_skips(store, tmp_path):
    images, sysroot, _ = store
    environ = {k: v for k, v in os.environ.items() if k != "INVOCATION_ID"}
    result = subprocess.run(["sh", "-c", 'exec "$0" "$@" <&-', str(FIRSTBOOT), "unlock", "--store", str(images),
                             "--root", str(sysroot), "--log", str(tmp_path / "u.log")], capture_output=True,
                            text=True, env=environ, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "Skipped" in result.stdout and "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_a_64_mib_line_is_refused_without_being_held(store, tmp_path):
    """Read in pieces: the process never holds the line (its peak memory stays far below 64 MiB of text)."""
    images, sysroot, _ = store
    environ = {k: v for k, v in os.environ.items() if k != "INVOCATION_ID"}
    measure = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", measure, str(FIRSTBOOT), "unlock", "--store", str(images),
                             "--root", str(sysroot), "--log", str(tmp_path / "u.log")],
                            input=b"x" * (64 << 20) + b"\n" + PASSPHRASE.encode() + b"\n", capture_output=True,
                            env=environ, timeout=300, check=False)
    peak_kib, code = map(int, result.stderr.decode().split()[-2:])
    assert code == 0, result.stderr.decode()[-2000:]
    assert "longer than 1024 characters" in result.stderr.decode()
    assert peak_kib < 60 * 1024, peak_kib
    assert (images / "desktop.qcow2").read_text() == "guest disk"


def test_a_store_that_is_a_symlink_is_reported_not_called_unencrypted(store, tmp_path):
    images, sysroot, _ = store
    link = tmp_path / "images-link"
    link.symlink_to(images)
    result = _unlock(link, sysroot, PASSPHRASE + "\n", log=tmp_path / "u.log")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "is a symbolic link" in result.stderr and "not encrypted" not in result.stdout + result.stderr
    assert f"--store {images.resolve()}" in result.stderr
    assert not (images / "desktop.qcow2").exists()


def test_an_encrypted_store_without_fscrypt_conf_is_reported_locked(store, tmp_path):
    images, _, _ = store
    elsewhere = tmp_path / "root-without-conf"
    elsewhere.mkdir()
    result = _unlock(images, elsewhere, PASSPHRASE + "\n", log=tmp_path / "u.log")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "is encrypted, but" in result.stderr and "fscrypt.conf is missing" in result.stderr
    assert "stays locked" in result.stderr
    assert not (images / "desktop.qcow2").exists()


def test_an_unencrypted_store_on_an_fscrypt_filesystem_needs_nothing(store, tmp_path):
    _, sysroot, _ = store
    plain = sysroot / "ostree" / "deploy" / "phyllome" / "var" / "lib" / "plain-images"
    plain.mkdir(parents=True)
    result = _unlock(plain, sysroot, "", log=tmp_path / "u.log")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is not encrypted: nothing to unlock" in result.stdout


def test_sigterm_while_asking_leaves_no_password_agent_behind(store, tmp_path):
    import signal
    import time

    images, sysroot, _ = store
    pid_file = tmp_path / "agent.pid"
    env = os.environ | _fake_agent(tmp_path, f"echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}\n"
                                             "exec sleep 300\n")
    proc = subprocess.Popen([str(FIRSTBOOT), "unlock", "--store", str(images), "--root", str(sysroot), "--log",
                             str(tmp_path / "u.log")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid_file.exists(), proc.communicate(timeout=5)
        agent = int(pid_file.read_text())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    assert "stays locked" in err.decode()
    state = Path(f"/proc/{agent}/stat")
    assert not state.exists() or state.read_text().split()[2] == "Z", "systemd-ask-password was left running"
