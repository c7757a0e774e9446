from __future__ import annotations

from pathlib import Path

from phyllome_installer import docgen

ROOT = Path(__file__).resolve().parents[2]


def test_answer_file_reference_is_up_to_date():
    committed = (ROOT / "docs" / "answer-file.md").read_text()
    assert committed == docgen.render(), "docs/answer-file.md is stale: run `make docs` and commit it"


def test_every_key_is_documented():
    for _, model in docgen.SECTIONS:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no docstring"


PACKAGES = ("phyllome_installer", "storage", "firstboot", "screens")


def architecture_names() -> set[str]:
    """The module paths docs/architecture.md names, in reading order: a name with a "/" (`storage/`,
    `phyllome_installer/discover.py`) sets the folder that the bare names after it (`probe.py`) are in."""
    import re

    text = (ROOT / "docs" / "architecture.md").read_text()
    folder, named = "", set()
    for name in re.findall(r"`([a-z_0-9]+(?:/[a-z_0-9]+)*(?:/|\.py))`", text):
        if "/" in name:
            folder = name if name.endswith("/") else name.rsplit("/", 1)[0] + "/"
            if name.endswith(".py"):
                named.add(name)
        else:
            named.add(folder + name)
    return named


def test_every_module_the_architecture_page_names_exists():
    named = architecture_names()
    assert len(named) > 30
    missing = sorted(name for name in named if not (ROOT / name).is_file())
    assert missing == [], f"docs/architecture.md names modules that do not exist: {missing}"


def test_the_architecture_page_names_every_module():
    modules = {str(p.relative_to(ROOT)) for package in PACKAGES for p in (ROOT / package).rglob("*.py")
               if p.name != "__init__.py" and "__pycache__" not in p.parts}
    unnamed = sorted(modules - architecture_names())
    assert unnamed == [], f"docs/architecture.md does not name: {unnamed}"


def test_no_file_keeps_a_merge_conflict_marker():
    import subprocess

    root = Path(__file__).resolve().parents[2]
    found = subprocess.run(["git", "grep", "-n", "-E", "^(<<<<<<< |>>>>>>> )", "--", "."], cwd=root,
                           capture_output=True, text=True, check=False).stdout
    assert found == "", found
