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
