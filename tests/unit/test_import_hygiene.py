"""The core never loads the UI framework (DESIGN.md section 1); the import contracts: test_import_contracts.py."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEADLESS = ["phyllome_installer", "storage", "firstboot"]


def _modules(package: str) -> list[str]:
    names = [package]
    for info in pkgutil.walk_packages([str(ROOT / package)], prefix=package + "."):
        names.append(info.name)
    return names


@pytest.mark.parametrize("package", HEADLESS)
def test_headless_packages_do_not_import_textual(package):
    modules = _modules(package)
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'screens')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"{package} pulled in: {out.stdout.strip()}"


def test_no_shell_true_anywhere():
    for package in HEADLESS + ["screens", "tests"]:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.keyword) and node.arg == "shell":
                    assert not (isinstance(node.value, ast.Constant) and node.value.value), path


def _loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after ``code`` (which prints nothing else)."""
    code += "\nimport sys\nprint(' '.join(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert out.stdout.strip(), out.stderr[-2000:]
    return set(out.stdout.splitlines()[-1].split())


HEAVY = ("pydantic", "libvirt", "blivet", "textual", "storage.probe", "storage.layout", "phyllome_installer.answers")


def _heavy(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded if m in HEAVY or m.startswith(tuple(h + "." for h in HEAVY)))


def _loaded_by_check(tmp_path: Path) -> set[str]:
    """The modules `phyllome-firstboot check --json --save` holds after checking a saved machine tree."""
    machine = ROOT / "tests/data/machines/this-ci-vm"
    code = ("import contextlib, io\nfrom phyllome_installer.cli import firstboot_main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    firstboot_main(['check', '--json', '--root', {str(machine)!r}, '--save', "
            f"{str(tmp_path / 'hw.json')!r}, '--log', '/dev/null'])\n")
    loaded = _loaded_after(code)
    assert "firstboot.checks" in loaded and (tmp_path / "hw.json").is_file()
    return loaded


def test_the_hardware_check_loads_no_schema_libvirt_or_ui(tmp_path):
    """`phyllome-firstboot check` (make bench's P4, against virt-host-validate) runs on a saved machine tree with
    none of pydantic, libvirt, blivet or textual loaded: the answers package came in through the CLI's imports."""
    assert _heavy(_loaded_by_check(tmp_path)) == []


def test_the_installer_first_screen_loads_only_what_it_shows():
    """Up to its first paint (make bench's P1), the installer loads none of the schema, the disk probe, libvirt, and
    none of the later screens or the form widgets the first screen does not have."""
    code = ("from pathlib import Path\nfrom phyllome_installer.core.runner import SubprocessRunner\n"
            "from phyllome_installer.frontend import Installer\nfrom phyllome_installer.sandbox import Sandbox\n"
            "from screens.app import create_installer_app\n"
            "app = create_installer_app(Installer(SubprocessRunner(), sandbox=Sandbox(Path('/nonexistent'))))\n"
            "app.call_later(lambda: app.call_after_refresh(app.exit))\n"
            "app.run(headless=True, size=(80, 25))\n")
    loaded = _loaded_after(code)
    assert "screens.welcome" in loaded
    later = sorted(m for m in loaded if m in {"screens.disk", "screens.encryption", "screens.host_user",
                                              "screens.summary", "screens.progress", "screens.fields",
                                              "phyllome_installer.core.progress", "tomllib"})
    assert [m for m in _heavy(loaded) if not m.startswith("textual")] == [] and later == []


def test_the_hardware_check_loads_no_event_classes_or_runner(tmp_path):
    """`phyllome-firstboot check` logs to its console through the text sink without the progress events (eleven
    dataclasses, created only when an event is emitted), never loads the command runner, subprocess or the TPM
    commands (a saved tree starts no process)."""
    loaded = _loaded_by_check(tmp_path)
    assert "phyllome_installer.core.sinks" in loaded
    avoidable = {"phyllome_installer.core.progress", "phyllome_installer.core.runner", "phyllome_installer.cli_tpm",
                 "subprocess", "shlex", "selectors", "queue"}
    assert sorted(loaded & avoidable) == []
