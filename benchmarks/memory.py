"""P6: peak memory of the whole process tree (the process and every descendant, sampled together from /proc every
10 ms; shared pages count once per process, so the sum is an upper bound), of

* the installer TUI driven through a whole sandbox install (keys as a user types them, tests/tui's walk), target
  150 MiB: the smallest machine the live medium installs on is this plus the live system;
* ``phyllome-firstboot check --json``, target 40 MiB;

each printed with the peak of a bare Textual app (first_paint.HELLO) as the baseline.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import first_paint
from benchmarks.rows import Row, mib, spread

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("PHYLLOME_BENCH_DIR", "/var/tmp/phyllome-bench"))
PAGE = os.sysconf("SC_PAGE_SIZE")
TUI_TARGET, CHECK_TARGET = 150 << 20, 40 << 20

TUI_INSTALL = """
import asyncio, sys
from pathlib import Path
from phyllome_installer.core.runner import SubprocessRunner
from phyllome_installer.frontend import Installer
from phyllome_installer.sandbox import Sandbox
from screens.app import create_installer_app
from screens.done import DoneScreen
from screens.failure import FailureScreen
from screens.summary import SummaryScreen
from tests.tui.conftest import MACHINE, walk_to_summary

async def main() -> int:
    installer = Installer(SubprocessRunner(), sandbox=Sandbox(Path(sys.argv[1])), proc=MACHINE / "proc",
                          sys_root=MACHINE / "sys")
    app = create_installer_app(installer)
    async with app.run_test(size=(80, 25)) as pilot:
        await walk_to_summary(pilot)
        for _ in range(40):  # a busy machine: the keys may still be on their way
            if isinstance(app.screen, SummaryScreen):
                break
            await pilot.pause(0.25)
        else:
            print(f"the walk did not reach the summary: {type(app.screen).__name__}", file=sys.stderr)
            return 3
        await pilot.press(*app.screen.word, "enter")  # "yes", or the disk's size when the image holds data
        for _ in range(2400):
            await pilot.pause(0.25)
            if isinstance(app.screen, DoneScreen | FailureScreen):
                break
        if not isinstance(app.screen, DoneScreen):
            print(f"the install did not end on the done screen: {type(app.screen).__name__}", file=sys.stderr)
            return 1
        return 0

sys.exit(asyncio.run(main()))
"""


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(b")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_rss(pid: int) -> int:
    """The resident memory of ``pid`` and all its descendants now, in bytes."""
    tree, total, todo = _children(), 0, [pid]
    while todo:
        current = todo.pop()
        todo += tree.get(current, [])
        try:
            with open(f"/proc/{current}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total


def peak_rss(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 900,
             ok: tuple[int, ...] = (0,), stdin: str | None = None) -> int:
    """The highest sum of the tree's resident memory while ``argv`` ran; at least its own peak (ru_maxrss).
    ``stdin``: written to its standard input, then closed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT,
                            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE)
    if stdin is not None and proc.stdin is not None:
        with proc.stdin:
            proc.stdin.write(stdin.encode())
    peak, deadline = 0, time.monotonic() + timeout
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.01)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode not in ok:
        raise RuntimeError(f"{argv[:4]} failed ({proc.returncode}): {err[-2000:]}")
    own = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(peak, (own if own > before else 0) * 1024)


def key_derivation_peak() -> int:
    """One fscrypt protector creation with the installer's own fscrypt.conf (one Argon2id derivation of
    storage/fscrypt.py's HASH_COSTS), alone: the part of the TUI's peak that the encryption's strength sets."""
    from benchmarks.compass import PASSPHRASE, create_protector, fscrypt_filesystem

    with fscrypt_filesystem("1G") as (mnt, env):
        return peak_rss(create_protector(mnt, "bench"), env=env, stdin=PASSPHRASE)


def rows(runs: int = 3) -> list[Row]:
    env = dict(os.environ, PHYLLOME_CONSOLE="0", PYTHONPATH=str(ROOT))
    hello = [sys.executable, "-c", first_paint.HELLO]
    check = [str(BIN / "phyllome-firstboot"), "check", "--json", "--save", str(WORK / "hw.json"), "--log",
             "/dev/null"]
    bare, checks = [], []
    for _ in range(runs):
        bare.append(peak_rss(hello, env=env))
        checks.append(peak_rss(check, env=env, ok=(0, 1)))  # 1: a check failed (no KVM here)
    tui = [peak_rss([sys.executable, "-c", TUI_INSTALL, str(WORK / "sandbox")], env=env)]
    kdf = key_derivation_peak()
    bare.append(peak_rss(hello, env=env))
    b = statistics.median(bare)
    return [
        Row("P6 peak RSS, process tree: installer TUI through a sandbox install", spread(tui, mib),
            f"target {mib(TUI_TARGET)}; bare Textual app: {spread(bare, mib)}", max(tui) / TUI_TARGET, 1.0),
        Row("   one key derivation alone (fscrypt protector creation)", mib(kdf), "", None, None),
        Row("P6b peak RSS, process tree: phyllome-firstboot check --json", spread(checks, mib),
            f"target {mib(CHECK_TARGET)}; bare Textual app: {mib(b)}", statistics.median(checks) / CHECK_TARGET,
            1.0),
    ]


if __name__ == "__main__":
    from benchmarks.compass import text_table

    print(text_table(rows(int(sys.argv[1]) if len(sys.argv) > 1 else 3)))
