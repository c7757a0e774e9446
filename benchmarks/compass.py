"""The compass ratios of issue 16, measured side by side in one run and printed as one table.

Each row is a measured value, the baseline it is compared with (measured in the same run, interleaved where the two
are processes of about the same length), the ratio, the target and whether the target is met:

* first paint of the installer TUI against a bare Textual app (``first_paint.py``);
* a sandbox install (``--json-progress``: each task's seconds as the engine reports them), split into the payload
  copy (``ostree-pull`` + ``ostree-deploy``) against ``cp -a`` of the same payload (its checked-out tree) onto a fresh
  filesystem of the same kind on a loop disk of the same size, and the fixed work (every other task) against
  3 s plus one key derivation per fscrypt protector (the time of one ``fscrypt metadata create protector``);
* the whole ``probe --json``, ``validate`` and ``install --dry-run`` processes against the bare interpreter;
* ``phyllome-firstboot check --json`` as the payload ships it (:func:`shipped`) against ``virt-host-validate qemu``.

Targets live here only, never in timed unit tests. Needs root (loop devices, mounts, the install lock).
Usage: python -m benchmarks.compass [--runs N] [--install-runs N] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import first_paint
from benchmarks.rows import BUSY_PER_CPU, HEADER, Row, load_during, secs, spread, with_load

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ANSWERS = ROOT / "tests/data/answers/good/reference.toml"
WORK = Path(os.environ.get("PHYLLOME_BENCH_DIR", "/var/tmp/phyllome-bench"))
SANDBOX = WORK / "sandbox"
#: Fixed work allowed besides the key derivations (issue 16).
FIXED_SECONDS = 3.0
COPY_TASKS = ("ostree-pull", "ostree-deploy")
LOCKED = "another install is running"
PACKAGES = ("phyllome_installer", "storage", "firstboot", "screens")


def timed(argv: list[str], **kwargs) -> float:
    started = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=False, **kwargs)
    return time.perf_counter() - started


def interleaved(commands: dict[str, list[str]], runs: int, **kwargs) -> dict[str, list[float]]:
    """Each run's wall time of each command; the commands take turns, so a busy moment hits them alike."""
    for argv in commands.values():
        timed(argv, **kwargs)  # warm the page cache
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(timed(argv, **kwargs))
    return times


def sh(*argv: str, stdin: str | None = None) -> str:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=True).stdout


# ---------------------------------------------------------------------------------------------- the install


def install_once(log: Path) -> dict[str, float]:
    """One sandbox install; each task's seconds (TaskFinished events) and the whole process as ``process``."""
    argv = [str(BIN / "phyllome-install"), "install", "--sandbox", "--sandbox-dir", str(SANDBOX),
            "--answers", str(ANSWERS), "--log", str(log), "--json-progress"]
    deadline = time.monotonic() + 600
    while True:
        started = time.perf_counter()
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if LOCKED not in result.stderr or time.monotonic() > deadline:
            break
        time.sleep(5)  # another engineer's install holds the lock: wait for it
    if result.returncode != 0:
        raise RuntimeError(f"sandbox install failed ({result.returncode}): {result.stderr[-2000:]}")
    tasks: dict[str, float] = {}
    for line in result.stdout.splitlines():  # the recovery code is printed too: never kept
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "task-finished":
                tasks[event["task"]] = event["seconds"]
    tasks["process"] = wall
    return tasks


def protectors(answers: Path = ANSWERS) -> int:
    from phyllome_installer.answers import load_config

    encryption = load_config(answers, redactor=None).storage.encryption
    if not encryption.enabled:
        return 0
    return len(encryption.protect) * (2 if encryption.recovery_key else 1)


@contextlib.contextmanager
def fresh_filesystem(size: str, fstype: str) -> Iterator[Path]:
    """A new filesystem of ``fstype`` on a sparse loop disk of ``size``, mounted; all of it removed afterwards."""
    WORK.mkdir(parents=True, exist_ok=True)
    image = WORK / "baseline.img"
    mountpoint = Path(tempfile.mkdtemp(prefix="baseline-", dir=WORK))
    image.unlink(missing_ok=True)
    sh("truncate", "-s", size, str(image))
    device = sh("losetup", "--find", "--show", str(image)).strip()
    try:
        mkfs = ["mkfs.ext4", "-q", "-F", "-O", "encrypt"] if fstype == "ext4" else ["mkfs.f2fs", "-q", "-f", "-O",
                                                                                     "extra_attr,encrypt"]
        sh(*mkfs, device)
        sh("mount", device, str(mountpoint))
        try:
            yield mountpoint
        finally:
            sh("umount", str(mountpoint))
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
        image.unlink(missing_ok=True)
        mountpoint.rmdir()


def copy_baseline(tree: Path, runs: int, size: str, fstype: str) -> float:
    """``cp -a`` of the payload's tree onto a fresh filesystem, then syncfs (the install's copy is durable too)."""
    times = []
    for _ in range(runs):
        with fresh_filesystem(size, fstype) as target:
            subprocess.run(["sync"], check=True)
            started = time.perf_counter()
            subprocess.run(["cp", "-a", f"{tree}/.", str(target / "copy")], check=True)
            subprocess.run(["sync", "--file-system", str(target)], check=True)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


PASSPHRASE = "benchmark passphrase\n"


@contextlib.contextmanager
def fscrypt_filesystem(size: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh ext4 set up for fscrypt with the installer's own fscrypt.conf: (mountpoint, the environment naming
    that configuration)."""
    from storage.fscrypt import config_text

    with fresh_filesystem(size, "ext4") as mnt:
        conf = mnt / "fscrypt.conf"
        conf.write_text(config_text())
        env = dict(os.environ, FSCRYPT_CONF=str(conf))
        subprocess.run(["fscrypt", "setup", str(mnt), "--quiet"], env=env, check=True, capture_output=True)
        yield mnt, env


def create_protector(mnt: Path, name: str) -> list[str]:
    """One passphrase protector (PASSPHRASE on standard input): one Argon2id derivation of the configured costs."""
    return ["fscrypt", "metadata", "create", "protector", str(mnt), "--source=custom_passphrase", f"--name={name}",
            "--quiet"]


def key_derivation(runs: int, size: str) -> float:
    """One fscrypt protector creation with the installer's own fscrypt.conf: one Argon2id derivation."""
    times = []
    with fscrypt_filesystem(size) as (mnt, env):
        for index in range(runs):
            started = time.perf_counter()
            subprocess.run(create_protector(mnt, f"bench{index}"), input=PASSPHRASE, text=True, env=env, check=True,
                           capture_output=True)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def payload_tree() -> Path:
    """The sandbox payload, built once, checked out as a plain tree (what the install copies)."""
    from phyllome_installer.core.runner import SubprocessRunner
    from phyllome_installer.sandbox import REF, Sandbox

    sandbox = Sandbox(SANDBOX)
    sandbox.ensure_payload(SubprocessRunner())
    tree = WORK / "payload-tree"
    shutil.rmtree(tree, ignore_errors=True)
    sh("ostree", f"--repo={sandbox.repo}", "checkout", REF, str(tree))
    return tree


BULK_SOURCE = Path("/usr/lib/x86_64-linux-gnu")  # ~700 MB of libraries: the size of a real host payload
BULK_REF = "phyllome/x86_64/bench-bulk"


def bulk_payload() -> tuple[Path, Path]:
    """The sandbox payload plus ``usr/lib/bulk`` (a copy of BULK_SOURCE), committed like the sandbox's (an archive
    repository) and checked out; built once, kept under the bench directory. Returns (repo, tree)."""
    from phyllome_installer.sandbox import Sandbox

    base = WORK / "bulk"
    repo, tree = base / "repo", base / "tree"
    if tree.is_dir() and subprocess.run(["ostree", f"--repo={repo}", "rev-parse", BULK_REF],
                                        capture_output=True, check=False).returncode == 0:
        return repo, tree
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    Sandbox._write_tree(tree)
    sh("cp", "-a", str(BULK_SOURCE), str(tree / "usr/lib/bulk"))
    sh("ostree", f"--repo={repo}", "init", "--mode=archive")
    sh("ostree", f"--repo={repo}", "commit", f"--branch={BULK_REF}", f"--tree=dir={tree}", "--owner-uid=0",
       "--owner-gid=0")
    return repo, tree


def ostree_copy(repo: Path, mountpoint: Path) -> float:
    """The install's own pull and deploy commands (deploy.py), timed together with its one sync at the end."""
    from phyllome_installer import deploy
    from phyllome_installer.answers import LocalPayload

    payload = LocalPayload(kind="local", repo=str(repo), ref=BULK_REF)
    for argv in deploy.init_commands(mountpoint):
        sh(*argv)
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    for argv in [*deploy.pull_commands(mountpoint, payload),
                 *deploy.deploy_commands(mountpoint, payload, deploy.kernel_args("0", "other", [])),
                 *deploy.durable_commands(mountpoint)]:
        sh(*argv)
    return time.perf_counter() - started


def bulk_rows(runs: int, size: str, fstype: str) -> list[Row]:
    repo, tree = bulk_payload()
    ostree, cp = [], []
    for _ in range(runs):
        with fresh_filesystem(size, fstype) as mountpoint:
            ostree.append(ostree_copy(repo, mountpoint))
        cp.append(copy_baseline(tree, 1, size, fstype))
    megabytes = int(sh("du", "-sm", str(tree)).split()[0])
    o, c = statistics.median(ostree), statistics.median(cp)
    return [Row(f"P3b the same pull + deploy commands, payload of {megabytes} MB", spread(ostree, secs),
                f"cp -a + syncfs: {spread(cp, secs)}", o / c, 1.5)]


def install_rows(runs: int) -> list[Row]:
    from phyllome_installer.sandbox import DISK_SIZE, kernel_can_mount

    fstype = "f2fs" if kernel_can_mount("f2fs") else "ext4"  # what the sandbox install uses for its root
    tree = payload_tree()
    samples, copies, kdfs = [], [], []
    logs = WORK / "logs"  # kept for a look at where the time went (secrets are redacted in them)
    logs.mkdir(parents=True, exist_ok=True)
    for index in range(runs):  # side by side: an install, then its baselines, in turn
        samples.append(install_once(logs / f"install-{index}.log"))
        copies.append(copy_baseline(tree, 1, DISK_SIZE, fstype))
        kdfs.append(key_derivation(1, "1G"))
    shutil.rmtree(tree, ignore_errors=True)
    tasks = [name for name in samples[0] if name != "process"]
    copy = statistics.median(sum(sample[t] for t in COPY_TASKS) for sample in samples)
    fixed = statistics.median(sum(v for t, v in sample.items() if t not in (*COPY_TASKS, "process"))
                              for sample in samples)
    cp, kdf = statistics.median(copies), statistics.median(kdfs)
    count = protectors()
    allowance = FIXED_SECONDS + count * kdf
    fixed_runs = [sum(v for t, v in sample.items() if t not in (*COPY_TASKS, "process")) for sample in samples]
    copy_runs = [sum(sample[t] for t in COPY_TASKS) for sample in samples]
    rows = [
        Row("P2 install: fixed work (every task but pull + deploy)", spread(fixed_runs, secs),
            f"{FIXED_SECONDS:g} s + {count} x KDF = {secs(allowance)}", fixed / allowance, 1.0),
        Row("P3 install: payload copy (ostree-pull + ostree-deploy)", spread(copy_runs, secs),
            f"cp -a + syncfs on fresh {fstype}, {DISK_SIZE} loop disk: {spread(copies, secs)}", copy / cp, 1.5),
        Row("   one key derivation (fscrypt protector creation)", spread(kdfs, secs), "", None, None),
    ]
    rows += bulk_rows(3, DISK_SIZE, fstype)  # 2 swung the ratio by 0.3: cp -a alone spread 1.4-2.9 s
    rows += [Row(f"   task {name}", spread([sample.get(name, 0.0) for sample in samples], secs), "", None, None)
             for name in tasks]
    rows.append(Row("   whole install process (interpreter, probe, tasks)",
                    spread([sample["process"] for sample in samples], secs), "", None, None))
    return rows


# ---------------------------------------------------------------------------------------------- processes


@contextlib.contextmanager
def shipped() -> Iterator[Path]:
    """The project as the payload ships it, in a temporary directory: a venv of Debian's python3 (with the system's
    site-packages) and payload/build.py's own install_project (the wheel, its bytecode, the commands). What a user
    runs; the checkout's venv has an editable install, whose finder alone costs a command about 17 ms a start."""
    from payload import build as payload_build

    with tempfile.TemporaryDirectory(prefix="phyllome-shipped-") as tmp:
        root = Path(tmp)
        venv = root / "venv"
        # As payload/customize.sh makes it: with pip and setuptools, whose distutils-precedence.pth runs at every start.
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)], check=True)
        site = next((venv / "lib").glob("python3*/site-packages"))
        payload_build.install_project(site, str(site), root, str(venv))
        yield root


def command_rows(runs: int) -> list[Row]:
    tool = str(BIN / "phyllome-install")
    with tempfile.TemporaryDirectory() as tmp, shipped() as ship:
        floor = [sys.executable, "-c", "pass"]
        check = [str(ship / "phyllome-firstboot"), "check", "--json", "--save", f"{tmp}/hw.json", "--log", "/dev/null"]
        try:
            json.loads(subprocess.run(check, capture_output=True, text=True, check=False).stdout)
        except ValueError:
            raise SystemExit(f"the shipped check printed no JSON: {' '.join(check)}") from None
        measured = interleaved({
            "floor": floor,
            "probe": [tool, "probe", "--json", "--log", "/dev/null"],
            "validate": [tool, "validate", str(ANSWERS), "--log", "/dev/null"],
            "plan": [tool, "install", "--dry-run", "--sandbox", "--sandbox-dir", str(SANDBOX), "--answers",
                     str(ANSWERS), "--log", "/dev/null"],
            "check": check,
            "shipped floor": [str(ship / "venv/bin/python3"), "-c", "pass"],
            "virt-host-validate": ["virt-host-validate", "qemu"],
        }, runs)
    median = {name: statistics.median(values) for name, values in measured.items()}
    floor = spread(measured["floor"])
    rows = [Row(f"   {name}: whole process", spread(measured[name]), f"python -c pass: {floor}",
                median[name] / median["floor"], None) for name in ("probe", "validate", "plan")]
    rows.append(Row("P4 phyllome-firstboot check --json (as shipped)", spread(measured["check"]),
                    f"virt-host-validate qemu: {spread(measured['virt-host-validate'])}",
                    median["check"] / median["virt-host-validate"], 3.0))
    rows.append(Row("   the shipped venv's python -c pass", spread(measured["shipped floor"]), "", None, None))
    return rows


def paint_rows(runs: int) -> list[Row]:
    result = first_paint.main(runs)
    return [Row("P1 first paint of the installer TUI (80x25)", spread(result["installer"]),
                f"bare Textual app: {spread(result['hello'])}", result["ratio"], 1.2)]


# ---------------------------------------------------------------------------------------------- the table


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    return f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}"


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def text_table(rows: list[Row]) -> str:
    cells = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                     for line in cells)


def compile_bytecode() -> None:
    """The project's modules as an installed package has them: compiled. Without this, a session that sets
    PYTHONDONTWRITEBYTECODE (as this machine's does) compiles every project module at each start, which the
    installed system never does (textual and the stdlib, in the baseline apps, are compiled already)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", *PACKAGES], cwd=ROOT, check=True)


def group(rows_of, *args) -> list[Row]:
    """A group of rows with the highest load average seen while it was measured. A group that fails is one row
    saying why (result FAIL), so the rest of the table is still printed."""
    with load_during() as load:
        try:
            rows = rows_of(*args)
        except Exception as exc:  # noqa: BLE001 (reported in the table, and the run fails)
            rows = [Row(f"{rows_of.__module__}.{rows_of.__name__}", "error", str(exc)[-300:].replace("\n", " "),
                        float("inf"), 0.0)]
    return with_load(rows, load)


PAINT_RUNS = 2
"""P1's runs, as a multiple of the others'."""


def run(runs: int = 7, install_runs: int = 3, *, live: bool = True) -> list[Row]:
    from benchmarks import live_boot, memory, vm_dry_run

    compile_bytecode()
    # P1 runs twice as often: a run is half a second, and the bare app's spread between runs (250-390 ms) is wider
    # than the gap the row measures, so 7 medians swung the ratio by 0.1 from run to run.
    rows = group(paint_rows, PAINT_RUNS * runs)
    rows += group(install_rows, install_runs)
    rows += group(command_rows, runs)
    rows += group(vm_dry_run.rows, 5)  # each run boots a guest: 3 were too few for a steady median on 2 cores
    rows += group(memory.rows, 3)
    if live:
        rows += group(live_boot.rows)
    return rows


def markdown(rows: list[Row], runs: int, install_runs: int) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return header(rows, runs, install_runs, stamp) + "\n\n" + table(rows) + "\n"


def header(rows: list[Row], runs: int, install_runs: int, stamp: str = "") -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    busy = [row.name.split()[0] for row in rows if row.busy and row.target is not None]
    return (f"`make bench`{', ' + stamp if stamp else ''}, {machine()}; load average {load} at the end. Medians of "
            f"{runs} runs ({PAINT_RUNS * runs} for P1, {install_runs} sandbox installs), min-max in brackets, measured "
            "and baseline runs interleaved. Column load: the highest 1-minute load average while the row was "
            "measured. "
            + (f"UNDER LOAD (above {BUSY_PER_CPU:g} per CPU): {', '.join(busy)}: their ratios are not an idle "
               "machine's." if busy else "No row with a target was measured under load."))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--install-runs", type=int, default=3)
    parser.add_argument("--markdown", type=Path, default=WORK / "compass.md")
    parser.add_argument("--no-live", action="store_true", help="skip P7 (two boots of the live ISO under QEMU)")
    args = parser.parse_args(argv)
    rows = run(args.runs, args.install_runs, live=not args.no_live)
    print(header(rows, args.runs, args.install_runs) + "\n")
    print(text_table(rows))
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(markdown(rows, args.runs, args.install_runs))
    print(f"\nmarkdown: {args.markdown}")
    return 1 if any(row.verdict == "FAIL" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
