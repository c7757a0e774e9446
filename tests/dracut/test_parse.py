"""The module's argument parsing, with dracut's own dracut-lib.sh and a fake kernel command line.

As dracut's TEST-98-GETARG (formerly TEST-80) does: dracut-getarg is dracut-util through a symlink, dracut-lib.sh
is sourced, getcmdline is replaced by the command line under test. Runs under bash and dash (the two shells a
dracut initramfs may use). Needs dracut-core installed, not root.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

DRACUT = Path("/usr/lib/dracut")
LIB = Path(__file__).resolve().parents[2] / "dracut" / "90phyllome" / "phyllome-lib.sh"
SHELLS = [s for s in ("bash", "dash") if shutil.which(s)]
DATA = Path(__file__).resolve().parents[1] / "data" / "bootargs"
PIN = hashlib.sha256(b"version = 1\n").hexdigest()

PRELUDE = """
export PATH="$TESTDIR:$PATH"
. "$TESTDIR/dracut-dev-lib.sh"
. "$TESTDIR/dracut-lib.sh"
debug_off() { :; }
debug_on() { :; }
getcmdline() { printf '%s' "$FAKE_CMDLINE"; }
. "$PHYLLOME_ARGS"
. "$PHYLLOME_LIB"
warn() { echo "WARN $*"; }
info() { echo "INFO $*"; }
PHYLLOME_DIR=${T_DIR:-$TESTDIR/run}
PHYLLOME_MNT=${T_MNT:-$TESTDIR/mnt}
[ -n "$T_DEV_WAIT" ] && PHYLLOME_DEV_WAIT=$T_DEV_WAIT
"""
# warn and info echo, as dracut's own do: a backslash in a message would be interpreted by dash's echo. Nothing a
# test runs may write this machine's /run/phyllome: the module's directories are the test's own.

FIELDS = ("KIND", "WHERE", "PATH", "URL", "SHOWN", "SHA256", "INSECURE", "ERROR", "WARNING", "PUBKEY", "FACTS",
          "EVENTS")
REPORT = ("phyllome_parse\nfor v in " + " ".join(FIELDS)
          + """; do eval "printf '%s=%s\\036' $v \\"\\$PHYLLOME_$v\\""; done\n""")

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


def sh(shell: str, testdir: Path, cmdline: str, body: str, cwd: Path | None = None,
       **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([shell, "-c", PRELUDE + body], capture_output=True, text=True, check=False, timeout=60,
                          cwd=cwd, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TESTDIR": str(testdir),
                               "PHYLLOME_LIB": str(LIB), "PHYLLOME_ARGS": str(LIB.with_name("phyllome-args.sh")),
                               "FAKE_CMDLINE": cmdline, **env})


def parse(shell: str, testdir: Path, cmdline: str) -> dict[str, str]:
    result = sh(shell, testdir, cmdline, REPORT)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return dict(field.split("=", 1) for field in result.stdout.split("\036") if field)


CASES = json.loads((DATA / "cases.json").read_text())


def as_shell(expect: dict) -> dict[str, str]:
    """The table's fields as the shell reports them (booleans as 0/1)."""
    return {key.upper(): ("1" if value else "0") if isinstance(value, bool) else value
            for key, value in expect.items()}


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("case", CASES, ids=[c["note"] for c in CASES])
def test_the_table(testdir, shell, case):
    got = parse(shell, testdir, case["cmdline"])
    expected = as_shell(case["expect"])
    assert {key: got[key] for key in expected} == expected


@pytest.mark.parametrize("shell", SHELLS)
def test_accept_writes_a_private_copy_and_checks_the_pin(testdir, shell, tmp_path):
    source = tmp_path / "in.toml"
    source.write_bytes(b"version = 1\n")
    run = tmp_path / "run"
    body = 'phyllome_parse; phyllome_accept "$SRC" "test source"; echo "rc=$?"'
    good = sh(shell, testdir, f"phyllome.answers.sha256={PIN}", body, SRC=str(source), T_DIR=str(run))
    assert "rc=0" in good.stdout, good.stdout + good.stderr
    assert (run / "answers.toml").read_bytes() == b"version = 1\n"
    assert stat.S_IMODE((run / "answers.toml").stat().st_mode) == 0o600
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    assert (run / "boot-status").read_text() == "found test source\n"

    bad = sh(shell, testdir, f"phyllome.answers.sha256={'0' * 64}", body, SRC=str(source), T_DIR=str(run))
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
                SRC=str(source), T_DIR=str(run))
    assert "rc=1" in result.stdout
    assert "larger than 1048576 bytes" in (run / "boot-status").read_text()


def finished_hooks(hooks: Path) -> str:
    """The initqueue's finished test, as dracut's check_finished runs it: each hook sourced in a subshell."""
    return (f'for f in "{hooks}"/initqueue/finished/*.sh; do [ -e "$f" ] || continue; '
            '( . "$f" ); printf "done=%s\\n" "$?"; done')


@pytest.mark.parametrize("shell", SHELLS)
def test_a_named_device_is_waited_for_but_never_longer_than_the_limit(testdir, shell, tmp_path):
    hooks = tmp_path / "hooks"
    (hooks / "initqueue" / "finished").mkdir(parents=True)
    body = f'hookdir="{hooks}"; phyllome_parse; phyllome_prepare; {finished_hooks(hooks)}'
    cmdline = '"phyllome.answers=hd:LABEL=NO SUCH KEY:/a.toml"'
    waiting = sh(shell, testdir, cmdline, body, T_DIR=str(tmp_path / "run"))
    assert "done=1" in waiting.stdout, waiting.stdout + waiting.stderr  # no such device, deadline 20 s away
    assert (tmp_path / "run" / "wait-device").read_text() == "/dev/disk/by-label/NO\\x20SUCH\\x20KEY\n"
    over = sh(shell, testdir, cmdline, body, T_DIR=str(tmp_path / "run"), T_DEV_WAIT="0")
    assert "done=0" in over.stdout  # the deadline has passed: the initqueue may finish without the device
    present = tmp_path / "present"
    present.touch()
    (tmp_path / "run" / "wait-until").write_text("999999999\n")
    (tmp_path / "run" / "wait-device").write_text(f"{present}\n")
    ready = sh(shell, testdir, "quiet", f'{finished_hooks(hooks)}', T_DIR=str(tmp_path / "run"))
    assert "done=0" in ready.stdout, ready.stdout + ready.stderr  # the device is there
    sh(shell, testdir, cmdline, "phyllome_parse; phyllome_fetch_local", T_DIR=str(tmp_path / "run"))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["boot-status"]  # pre-pivot: no wait files left


# ---------------------------------------------------------------------------------------------- hostile arguments

HOSTILE = [c["cmdline"] for c in CASES if "PWNED" in c["cmdline"]] + [
    '"phyllome.answers=hd:LABEL=KEY\';touch PWNED;\':/a.toml"',
    '"phyllome.answers=hd:LABEL=KEY:/a.toml$(touch PWNED)"',
    'phyllome.answers=hd:LABEL=\\";touch${IFS}PWNED;#:/a.toml',
    '"phyllome.answers=hd:LABEL=a\nb:/$(touch PWNED)"',
    "phyllome.answers=https://h/$(touch${IFS}PWNED) phyllome.answers.insecure=1",
    '"phyllome.answers=https://u:$(touch PWNED)@h/a.toml"',
    "phyllome.answers=file:///`touch${IFS}PWNED` phyllome.answers.sha256=`touch${IFS}PWNED`",
    "phyllome.answers.insecure=$(touch${IFS}PWNED) phyllome.answers=http://h/a",
]
#: The kernel hands unknown NAME=VALUE words to init as environment variables; bash evaluates a variable's value
#: as an expression in arithmetic, so a[$(cmd)] there would run cmd. The module never reads these from there.
HOSTILE_ENV = {"PHYLLOME_TIMEOUT": "a[$(touch PWNED)]", "PHYLLOME_DEV_WAIT": "a[$(touch PWNED)]",
               "PHYLLOME_MAX_BYTES": "a[$(touch PWNED)]", "PHYLLOME_DIR": "/nonexistent/$(touch PWNED)"}
FINISHED_HOOK = ("# 90phyllome: the answer device (its name is data in /run/phyllome, never code here)\n"
                 "type phyllome_device_ready > /dev/null 2>&1 || . /lib/phyllome-lib.sh\n"
                 "phyllome_device_ready\n")


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("cmdline", HOSTILE)
def test_hostile_arguments_run_nothing_in_any_hook(testdir, shell, cmdline, tmp_path):
    """What the cmdline hook, the initqueue's finished hook and the pre-pivot hook do, with the argument; a
    command that ran would leave PWNED in the working directory. One console line at most, one status line."""
    work = tmp_path / "work"
    work.mkdir()
    hooks = tmp_path / "hooks"
    (hooks / "initqueue" / "finished").mkdir(parents=True)
    live = tmp_path / "live"
    live.mkdir()
    body = (f'hookdir="{hooks}"; phyllome_parse; phyllome_prepare; {finished_hooks(hooks)}; '
            f'NEWROOT="{live}"; phyllome_parse; phyllome_done || phyllome_fetch_local; echo "end"')
    result = sh(shell, testdir, cmdline, body, cwd=work, T_DIR=str(tmp_path / "run"), T_MNT=str(tmp_path / "mnt"),
                T_DEV_WAIT="0", **HOSTILE_ENV)
    assert list(work.iterdir()) == [], result.stdout + result.stderr
    assert "end" in result.stdout.splitlines(), result.stdout + result.stderr
    assert "syntax error" not in result.stderr and "not found" not in result.stderr, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("WARN ")]
    assert 1 <= len(lines) <= 2, result.stdout  # the refusal, and a boolean's warning where there is one
    status = (tmp_path / "run" / "boot-status").read_text()
    assert status.count("\n") == 1 and status.startswith("failed ")
    for hook in (hooks / "initqueue" / "finished").iterdir():  # constant text: nothing of the argument in it
        assert hook.read_text() == FINISHED_HOOK


@pytest.mark.parametrize("shell", SHELLS)
def test_a_message_with_backslashes_is_one_line_under_any_shell(testdir, shell, tmp_path):
    cmdline = "phyllome.answers=/no\\nsuch\\c.toml"
    result = sh(shell, testdir, cmdline, "phyllome_parse; phyllome_fetch_local", T_DIR=str(tmp_path / "run"))
    status = (tmp_path / "run" / "boot-status").read_text()
    assert status == ("failed phyllome.answers=/no?nsuch?c.toml: no such file in the initramfs or the live "
                      "root\n")
    assert [line for line in result.stdout.splitlines() if line.startswith("WARN")] == [
        "WARN phyllome: phyllome.answers=/no?nsuch?c.toml: no such file in the initramfs or the live root; going on "
        "to the interactive installer"]


# ---------------------------------------------------------------------------------------------- reads stay put


@pytest.mark.parametrize("shell", SHELLS)
def test_a_link_off_the_live_root_is_refused(testdir, shell, tmp_path):
    live = tmp_path / "live"
    (live / "etc").mkdir(parents=True)
    secret = tmp_path / "initramfs-only.toml"
    secret.write_text("version = 1\n# not from the live root\n")
    (live / "etc" / "answers.toml").symlink_to(secret)  # absolute: resolved in the initramfs, not the live root
    (live / "etc" / "inside.toml").write_text("version = 1\n")
    (live / "etc" / "relative.toml").symlink_to("inside.toml")
    body = f'NEWROOT="{live}"; phyllome_parse; phyllome_fetch_local; echo "rc=$?"'
    run = tmp_path / "run"
    refused = sh(shell, testdir, "phyllome.answers=file:/etc/answers.toml", body, T_DIR=str(run))
    assert "rc=1" in refused.stdout
    assert (run / "boot-status").read_text() == ("failed phyllome.answers=file:/etc/answers.toml: a link in the "
                                                 "live root leads off it; refused\n")
    assert not (run / "answers.toml").exists()
    accepted = sh(shell, testdir, "phyllome.answers=file:/etc/relative.toml", body, T_DIR=str(run))
    assert "rc=0" in accepted.stdout, accepted.stdout + accepted.stderr
    assert (run / "answers.toml").read_text() == "version = 1\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_inside_resolves_within_its_root_only(testdir, shell, tmp_path):
    root = tmp_path / "key"
    (root / "sub").mkdir(parents=True)
    (root / "a.toml").write_text("x")
    (root / "sub" / "up.toml").symlink_to("../a.toml")
    (root / "abs.toml").symlink_to("/etc/hostname")
    (root / "dir.toml").mkdir()
    (root / "fifo.toml").symlink_to("/dev/null")
    body = ('for p in /a.toml /sub/up.toml /abs.toml /dir.toml /fifo.toml /none.toml; do '
            'phyllome_inside "$ROOT" "$p" > /dev/null; printf "%s=%s\\n" "$p" "$?"; done')
    result = sh(shell, testdir, "quiet", body, ROOT=str(root))
    assert result.stdout.split() == ["/a.toml=0", "/sub/up.toml=0", "/abs.toml=3", "/dir.toml=2", "/fifo.toml=3",
                                     "/none.toml=2"]
