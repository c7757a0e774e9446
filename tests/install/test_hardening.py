"""Interruption, kill -9, two installs at once, stale loop devices, a twin mount: no case costs data (root tier).

Every test drives the real CLI in a subprocess against a sandbox image, sends real signals, and checks the
machine afterwards: no mount under the sandbox, no loop device on the image, no fusefat left, and after a re-run
the installed filesystems pass ``fsck -n``.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.loopdev import mounted, sh

pytestmark = pytest.mark.root
ANSWERS = Path(__file__).resolve().parents[1] / "data" / "answers" / "good" / "reference.toml"
TASKS = ["check", "partition", "mount", "ostree-init", "ostree-pull", "ostree-deploy", "host-config", "fscrypt",
         "bootloader", "finish"]


def start(base: Path, log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "phyllome_installer.cli", "install", "--sandbox", "--sandbox-dir",
                             str(base), "--answers", str(ANSWERS), "--log", str(log), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(base: Path, log: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "phyllome_installer.cli", "install", "--sandbox", "--sandbox-dir",
                           str(base), "--answers", str(ANSWERS), "--log", str(log)],
                          capture_output=True, text=True, timeout=600, check=False)


def signal_in_task(proc: subprocess.Popen, task: int, sig: int) -> tuple[int, str]:
    """Send ``sig`` as soon as the install announces task number ``task``; return (exit code, stderr)."""
    seen: list[str] = []
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(f"[{task}/"):
            proc.send_signal(sig)
            break
    rest = proc.communicate(timeout=300)[1]
    return proc.returncode, "".join(seen) + rest


def leftovers(base: Path) -> list[str]:
    found = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
             if str(base) in line.split()[4]]
    found += [f"loop: {line}" for line in sh("losetup", "-j", str(base / "disk.img")).splitlines()]
    found += [f"process: {line}" for line in subprocess.run(["pgrep", "-a", "fusefat"], capture_output=True,
                                                             text=True, check=False).stdout.splitlines()
              if str(base) in line]
    return found


def fsck_clean(image: Path) -> None:
    """Every filesystem of the installed image passes a forced, read-only check."""
    with loop_image_existing(image) as device:
        for number, checker in ((1, ["fsck.vfat", "-n"]), (2, ["fsck.ext4", "-fn"]), (3, ["fsck.ext4", "-fn"])):
            out = subprocess.run([*checker, f"{device}p{number}"], capture_output=True, text=True, check=False)
            assert out.returncode == 0, f"{checker[0]} {device}p{number}: {out.stdout}{out.stderr}"


class loop_image_existing:  # noqa: N801 (a context manager named like one)
    def __init__(self, image: Path) -> None:
        self.image = image

    def __enter__(self) -> str:
        self.device = sh("losetup", "--find", "--show", "--read-only", str(self.image)).strip()
        sh("partx", "-u", self.device)
        return self.device

    def __exit__(self, *exc) -> None:
        subprocess.run(["partx", "-d", self.device], check=False)
        subprocess.run(["losetup", "-d", self.device], check=False)


def test_sigterm_in_each_task_cleans_up_and_a_rerun_installs_cleanly(tmp_path):
    base = tmp_path / "sandbox"
    for number, name in enumerate(TASKS, 1):
        code, err = signal_in_task(start(base, tmp_path / f"term-{name}.log"), number, signal.SIGTERM)
        assert "Traceback" not in err
        if code == 0:  # the signal came after the last task had finished: then the install is complete
            assert number == len(TASKS), err[-2000:]
            continue
        assert code == 130, err[-2000:]
        failed = re.search(r"interrupted in task (\S+):", err)
        assert failed is not None, err[-2000:]
        assert TASKS.index(failed.group(1)) >= number - 1, (name, failed.group(1))
        if TASKS.index(failed.group(1)) >= 1:
            assert "is not bootable" in err
        else:
            assert "nothing was written" in err
        assert leftovers(base) == [], (name, leftovers(base))
        assert "interrupted in task" in (tmp_path / f"term-{name}.log").read_text()
    final = run(base, tmp_path / "final.log")
    assert final.returncode == 0, final.stderr[-3000:]
    assert leftovers(base) == []
    fsck_clean(base / "disk.img")


@pytest.mark.parametrize("task", ["partition", "ostree-pull", "host-config"])
def test_kill_9_then_the_next_run_cleans_up_what_was_left_and_installs(tmp_path, task):
    base = tmp_path / "sandbox"
    code, _ = signal_in_task(start(base, tmp_path / "killed.log"), TASKS.index(task) + 1, signal.SIGKILL)
    assert code == -signal.SIGKILL
    time.sleep(0.5)
    again = run(base, tmp_path / "again.log")
    assert again.returncode == 0, again.stderr[-3000:]
    assert leftovers(base) == []
    fsck_clean(base / "disk.img")


def test_two_installs_at_once_the_second_is_refused_naming_the_first(tmp_path):
    first = start(tmp_path / "one", tmp_path / "one.log")
    try:
        assert first.stderr is not None
        for line in first.stderr:  # the first install holds the lock once it prints its first task
            if line.startswith("[1/"):
                break
        second = run(tmp_path / "two", tmp_path / "two.log")
        assert second.returncode == 2
        assert f"another install is running: pid {first.pid} (phyllome-install install --sandbox" in second.stderr
        assert not (tmp_path / "two").exists()  # nothing read or written for the refused one
        assert not (tmp_path / "two.log").exists()  # and the running install's log was not touched either
    finally:
        first.communicate(timeout=600)
    assert first.returncode == 0


def _ensure_free_loop_devices_below(limit: int, wanted: int) -> None:
    """At least `wanted` unattached loop devices numbered below `limit` (created with LOOP_CTL_ADD if missing)."""
    import fcntl
    import os

    loop_ctl_add = 0x4C80
    free = [n for n in range(limit) if Path(f"/sys/block/loop{n}").exists()
            and not Path(f"/sys/block/loop{n}/loop").exists()]
    control = os.open("/dev/loop-control", os.O_RDWR)
    try:
        for number in range(limit):
            if len(free) >= wanted:
                return
            if not Path(f"/sys/block/loop{number}").exists():
                fcntl.ioctl(control, loop_ctl_add, number)
                free.append(number)
    finally:
        os.close(control)
    assert len(free) >= wanted, f"fewer than {wanted} free loop devices below loop{limit}"


def test_a_stale_partitioned_loop_device_neither_breaks_the_install_nor_gets_io(tmp_path):
    """A loop device detached with its partitions still registered (loopNp1 under an empty loopN)."""
    stale = tmp_path / "stale.img"
    sh("truncate", "-s", "64M", str(stale))
    sh("sfdisk", "--quiet", str(stale), stdin="label: gpt\n,16M\n,16M\n")
    # A high loop number, so that the install's own `losetup --find` does not pick (and so repair) this one.
    device = next(f"/dev/loop{n}" for n in range(40, 200) if not Path(f"/sys/block/loop{n}/loop").exists()
                  and not list(Path(f"/sys/block/loop{n}").glob(f"loop{n}p*")))
    sh("losetup", device, str(stale))
    sh("partx", "-a", device)
    sh("losetup", "-d", device)
    name = Path(device).name
    # A detached loop device is free to the kernel: `losetup --find` hands out the lowest free one, and would give
    # this one as soon as every lower loop device is taken (by leaked devices of killed test runs, say). Free ones
    # below it are made sure of, so that what this test measures is the install, not the numbering.
    _ensure_free_loop_devices_below(int(name.removeprefix("loop")), 8)
    try:
        assert Path(f"/sys/block/{name}/{name}p1").exists()  # the stale partition is there
        before = Path(f"/sys/block/{name}/stat").read_text().split()
        result = run(tmp_path / "sandbox", tmp_path / "install.log")
        assert result.returncode == 0, result.stderr[-3000:]
        after = Path(f"/sys/block/{name}/stat").read_text().split()
        assert before[4] == after[4], "writes were sent to the detached loop device"  # field 5: write I/Os
    finally:
        if sh("losetup", "-j", str(stale)) == "":
            sh("losetup", device, str(stale))
        subprocess.run(["partx", "-d", device], check=False)
        subprocess.run(["losetup", "-d", device], check=False)
        stale.unlink(missing_ok=True)


def test_an_image_mounted_through_another_loop_device_is_never_repartitioned(tmp_path):
    base = tmp_path / "sandbox"
    assert run(base, tmp_path / "first.log").returncode == 0
    image = base / "disk.img"
    before = subprocess.run(["sfdisk", "-J", str(image)], capture_output=True, text=True, check=True).stdout
    twin = sh("losetup", "--find", "--show", str(image)).strip()
    try:
        sh("partx", "-u", twin)
        with mounted(f"{twin}p2", tmp_path / "elsewhere"):
            again = run(base, tmp_path / "again.log")
            assert again.returncode == 2, again.stderr[-2000:]
            assert f"{Path(twin).name}p2 is mounted on {tmp_path / 'elsewhere'}" in again.stderr
        assert subprocess.run(["sfdisk", "-J", str(image)], capture_output=True, text=True,
                              check=True).stdout == before
    finally:
        subprocess.run(["partx", "-d", twin], check=False)
        subprocess.run(["losetup", "-d", twin], check=False)


def test_a_log_given_as_a_symlink_is_refused_before_anything_happens(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "install.log").symlink_to(victim)
    result = run(tmp_path / "sandbox", tmp_path / "install.log")
    assert result.returncode == 2 and "is a symbolic link; refused" in result.stderr
    assert victim.read_text() == "precious\n" and not (tmp_path / "sandbox").exists()


def test_sigint_stops_like_sigterm(tmp_path):
    """SIGINT (Ctrl+C in a terminal) behaves like SIGTERM: a clean stop, exit 130."""
    proc = start(tmp_path / "sandbox", tmp_path / "int.log")
    code, err = signal_in_task(proc, 5, signal.SIGINT)
    assert code == 130 and "interrupted (SIGINT)" in err, err[-2000:]
    assert "KeyboardInterrupt" not in err
    assert leftovers(tmp_path / "sandbox") == []


def test_a_sandbox_directory_given_through_a_symlink_leaves_nothing_behind(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    result = run(tmp_path / "link", tmp_path / "install.log")
    assert result.returncode == 0, result.stderr[-3000:]
    assert leftovers(tmp_path / "real") == [] and "did not end after unmounting" not in result.stderr
    (tmp_path / "file").write_text("not a directory")
    refused = run(tmp_path / "file", tmp_path / "again.log")
    assert refused.returncode == 2 and "is not a directory" in refused.stderr
