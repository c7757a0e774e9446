"""The layering of DESIGN.md section 1 as import-linter contracts (pyproject.toml [tool.importlinter]).

`make test` runs `lint-imports` itself; this tier runs it too (so a bare `pytest` keeps the rule), proves that a
forbidden import of each kind breaks the contracts, and that the layers name every module of the project.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["phyllome_installer", "storage", "firstboot", "screens"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], check=False, cwd=root, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}, timeout=300)


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_tree_keeps_its_contracts():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    """The project's packages and its contracts, in a folder of their own (caches left out)."""
    root = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root)
    return root


BAD = [
    # (file, the line added, the contract it breaks)
    ("phyllome_installer/core/facts.py", "from phyllome_installer import plan", "the layers"),
    ("storage/layout.py", "from firstboot import host", "the layers"),
    ("firstboot/vm.py", "from phyllome_installer.answers import models", "the layers"),
    ("phyllome_installer/answers/rules.py", "import storage.probe", "the layers"),
    ("firstboot/gpu.py", "from phyllome_installer import tasks", "the layers"),
    ("phyllome_installer/core/runner.py", "import textual", "only the screens import textual"),
    ("storage/fscrypt.py", "def _late():\n    from textual import app", "only the screens import textual"),
    # a cycle hidden inside a function, as the five of issue #25 were
    ("storage/layout.py", "def _late():\n    from storage import apply", "no import cycles"),
    ("phyllome_installer/core/errors.py", "def _late():\n    from phyllome_installer.core import runner",
     "no import cycles"),
]


@pytest.mark.parametrize("path,line,contract", BAD, ids=[f"{p}:{c}" for p, _, c in BAD])
def test_a_forbidden_import_breaks_the_contracts(copy, path, line, contract):
    target = copy / path
    kept = target.read_text()
    try:
        target.write_text(kept + "\n" + line + "  # noqa\n")
        out = _lint(copy)
    finally:
        target.write_text(kept)
    assert out.returncode == 1, out.stdout + out.stderr
    broken = out.stdout.split("Broken contracts", 1)[1]
    assert contract in broken, out.stdout


def test_the_copy_alone_keeps_them(copy):
    """The proof above reads the copy, not the installed tree: untouched, the copy is kept."""
    out = _lint(copy)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_layers_name_every_module_of_the_project():
    """A new module of phyllome_installer/ must be given a layer, or the contracts would not see it."""
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    named = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
    package = ROOT / "phyllome_installer"
    modules = {f"phyllome_installer.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    modules |= {f"phyllome_installer.{p.parent.name}" for p in package.glob("*/__init__.py")}
    assert modules - named == set(), "modules in no layer"
    assert named - modules - {"screens", "storage", "firstboot"} == set(), "layers naming no module"
    assert {"screens", "storage", "firstboot"} <= named
