"""The module's argument parsing, with dracut's own dracut-lib.sh and a fake kernel command line.

As dracut's TEST-98-GETARG (formerly TEST-80) does: dracut-getarg is dracut-util through a symlink, dracut-lib.sh
is sourced, getcmdline is replaced by the command line under test. Runs under bash and dash (the two shells a
dracut initramfs may use). Needs dracut-core installed, not root.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

DRACUT = Path("/usr/lib/dracut")
LIB = Path(__file__).resolve().parents[2] / "dracut" / "90phyllome" / "phyllome-lib.sh"
SHELLS = [s for s in ("bash", "dash") if shutil.which(s)]
PIN = hashlib.sha256(b"version = 1\n").hexdigest()

PRELUDE = """
export PATH="$TESTDIR:$PATH"
. "$TESTDIR/dracut-dev-lib.sh"
. "$TESTDIR/dracut-lib.sh"
debug_off() { :; }
debug_on() { :; }
getcmdline() { printf '%s' "$FAKE_CMDLINE"; }
. "$PHYLLOME_LIB"
warn() { echo "WARN $*"; }
info() { echo "INFO $*"; }
"""

REPORT = """
phyllome_parse
for v in KIND WHERE PATH URL SHA256 INSECURE ERROR; do eval "printf '%s=%s\\n' $v \\"\\$PHYLLOME_$v\\""; done
"""


@pytest.fixture(scope="module")
def testdir(tmp_path_factory) -> Path:
    if not (DRACUT / "dracut-util").exists():
        pytest.fail("dracut-core is not installed (make setup installs it)")
    folder = tmp_path_factory.mktemp("dracut-lib")
    (folder / "dracut-getarg").symlink_to(DRACUT / "dracut-util")
    (folder / "dracut-getargs").symlink_to(DRACUT / "dracut-util")
    for name in ("dracut-lib.sh", "dracut-dev-lib.sh"):
        (folder / name).symlink_to(DRACUT / "modules.d" / "99base" / name)
    return folder


def sh(shell: str, testdir: Path, cmdline: str, body: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([shell, "-c", PRELUDE + body], capture_output=True, text=True, check=False, timeout=60,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TESTDIR": str(testdir),
                               "PHYLLOME_LIB": str(LIB), "FAKE_CMDLINE": cmdline, **env})


def parse(shell: str, testdir: Path, cmdline: str) -> dict[str, str]:
    result = sh(shell, testdir, cmdline, REPORT)
    assert result.returncode == 0, result.stderr
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


CASES = [
    ("quiet", {"KIND": "default", "WHERE": "LABEL=PHYLLOME-ANS", "PATH": "/answers.toml"}),
    ("phyllome.answersx=/a.toml", {"KIND": "default"}),
    ('x "phyllome.answers=hd:LABEL=MY KEY:/dir/a b.toml" y',
     {"KIND": "hd", "WHERE": "LABEL=MY KEY", "PATH": "/dir/a b.toml", "ERROR": ""}),
    ("phyllome.answers=hd:UUID=1234-ABCD:/answers.toml",
     {"KIND": "hd", "WHERE": "UUID=1234-ABCD", "PATH": "/answers.toml"}),
    ("phyllome.answers=file:/a.toml", {"KIND": "file", "PATH": "/a.toml"}),
    ("phyllome.answers=file:///a.toml", {"KIND": "file", "PATH": "/a.toml"}),
    ("phyllome.answers=/first.toml phyllome.answers=/a.toml", {"KIND": "file", "PATH": "/a.toml"}),
    ("phyllome.answers=https://h.example/a.toml", {"KIND": "url", "URL": "https://h.example/a.toml", "ERROR": ""}),
    (f"phyllome.answers=http://10.0.2.2/a.toml phyllome.answers.sha256={PIN.upper()}",
     {"KIND": "url", "SHA256": PIN, "ERROR": ""}),
    ("phyllome.answers=http://10.0.2.2/a.toml phyllome.answers.insecure=1", {"KIND": "url", "INSECURE": "1"}),
    ("phyllome.answers=http://10.0.2.2/a.toml", {"KIND": "error", "ERROR": (
        "phyllome.answers=http://10.0.2.2/a.toml: refused: plain http:// needs phyllome.answers.sha256= "
        "(or phyllome.answers.insecure=1)")}),
    ("phyllome.answers=http://10.0.2.2/a.toml phyllome.answers.insecure=0", {"KIND": "error", "INSECURE": "0"}),
    ("phyllome.answers=https://h/a.toml phyllome.answers.sha256=abc", {"KIND": "error", "ERROR": (
        "phyllome.answers.sha256=abc: expected 64 hexadecimal digits")}),
    ("phyllome.answers=ftp://h/a.toml", {"KIND": "error"}),
    ("phyllome.answers=hd:sdb1:/a.toml", {"KIND": "error", "ERROR": (
        "phyllome.answers=hd:sdb1:/a.toml: expected hd:LABEL=NAME:/path or hd:UUID=UUID:/path")}),
    ("phyllome.answers=hd:LABEL=KEY", {"KIND": "error"}),
]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("cmdline", "expected"), CASES, ids=[c for c, _ in CASES])
def test_parse(testdir, shell, cmdline, expected):
    got = parse(shell, testdir, cmdline)
    assert {key: got[key] for key in expected} == expected


@pytest.mark.parametrize("shell", SHELLS)
def test_accept_writes_a_private_copy_and_checks_the_pin(testdir, shell, tmp_path):
    source = tmp_path / "in.toml"
    source.write_bytes(b"version = 1\n")
    run = tmp_path / "run"
    body = 'phyllome_parse; phyllome_accept "$SRC" "test source"; echo "rc=$?"'
    good = sh(shell, testdir, f"phyllome.answers.sha256={PIN}", body, SRC=str(source), PHYLLOME_DIR=str(run))
    assert "rc=0" in good.stdout, good.stdout + good.stderr
    assert (run / "answers.toml").read_bytes() == b"version = 1\n"
    assert stat.S_IMODE((run / "answers.toml").stat().st_mode) == 0o600
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    assert (run / "boot-status").read_text() == "found test source\n"

    bad = sh(shell, testdir, f"phyllome.answers.sha256={'0' * 64}", body, SRC=str(source), PHYLLOME_DIR=str(run))
    assert "rc=1" in bad.stdout
    assert not (run / "answers.toml").exists()
    assert (run / "boot-status").read_text().startswith("failed test source: refused: its sha256 is " + PIN)
    warnings = [line for line in bad.stdout.splitlines() if line.startswith("WARN")]
    assert len(warnings) == 1


@pytest.mark.parametrize("shell", SHELLS)
def test_too_large_is_refused(testdir, shell, tmp_path):
    source = tmp_path / "big.toml"
    source.write_bytes(b"#" * ((1 << 20) + 1))
    run = tmp_path / "run"
    result = sh(shell, testdir, "quiet", 'phyllome_parse; phyllome_accept "$SRC" big; echo "rc=$?"',
                SRC=str(source), PHYLLOME_DIR=str(run))
    assert "rc=1" in result.stdout
    assert "larger than 1048576 bytes" in (run / "boot-status").read_text()


@pytest.mark.parametrize("shell", SHELLS)
def test_a_named_device_is_waited_for_but_never_longer_than_the_limit(testdir, shell, tmp_path):
    finished = tmp_path / "hooks" / "initqueue" / "finished"
    finished.mkdir(parents=True)
    body = ('hookdir="$HOOKS"; phyllome_parse; phyllome_prepare; '
            'sh "$hookdir/initqueue/finished/phyllome-device.sh"; echo "done=$?"; '
            'cat "$hookdir/initqueue/finished/phyllome-device.sh"')
    cmdline = '"phyllome.answers=hd:LABEL=NO SUCH KEY:/a.toml"'
    waiting = sh(shell, testdir, cmdline, body, HOOKS=str(tmp_path / "hooks"))
    assert "done=1" in waiting.stdout, waiting.stdout + waiting.stderr  # no such device, deadline 20 s away
    assert "/dev/disk/by-label/NO\\x20SUCH\\x20KEY" in waiting.stdout
    over = sh(shell, testdir, cmdline, body, HOOKS=str(tmp_path / "hooks"), PHYLLOME_DEV_WAIT="0")
    assert "done=0" in over.stdout  # the deadline has passed: the initqueue may finish without the device
