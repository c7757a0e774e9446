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


def test_every_module_the_architecture_page_names_exists():
    import re

    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`([a-z_0-9/]+\.py)`", text))
    assert len(named) > 30
    everything = {str(p.relative_to(root)) for p in root.rglob("*.py") if ".venv" not in p.parts}
    missing = [name for name in named if not any(path == name or path.endswith("/" + name) for path in everything)]
    assert missing == [], f"docs/architecture.md names modules that do not exist: {missing}"


def test_no_file_keeps_a_merge_conflict_marker():
    import subprocess

    root = Path(__file__).resolve().parents[2]
    found = subprocess.run(["git", "grep", "-n", "-E", "^(<<<<<<< |>>>>>>> )", "--", "."], cwd=root,
                           capture_output=True, text=True, check=False).stdout
    assert found == "", found
