"""The installer's side of the one answer-source grammar: the cases of tests/data/bootargs/cases.json, which
tests/dracut/test_parse.py runs against the initramfs module under bash and dash."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from phyllome_installer.bootanswers import UNATTENDED_KARG, kernel_flag
from phyllome_installer.discover import boolean, parse_spec

CASES = json.loads((Path(__file__).resolve().parents[1] / "data" / "bootargs" / "cases.json").read_text())


def as_fields(spec) -> dict:
    return {"kind": spec.kind, "where": spec.where, "path": spec.path, "url": spec.url, "shown": spec.shown,
            "sha256": spec.sha256, "insecure": spec.insecure, "error": spec.error, "warning": spec.warning,
            "pubkey": spec.pubkey, "facts": spec.facts, "events": spec.events}


@pytest.mark.parametrize("case", CASES, ids=[c["note"] for c in CASES])
def test_the_table(case):
    got = as_fields(parse_spec(case["cmdline"]))
    assert {key: got[key] for key in case["expect"]} == case["expect"]


def test_no_credential_is_ever_in_what_is_shown():
    for case in CASES:
        spec = parse_spec(case["cmdline"])
        for secret in ("s3cr3t", "pa#ss", "pa?ss", "pa/ss", "p@ss", "tok3n", "1234/ss", "pa%23ss"):
            if secret in case["cmdline"]:
                assert secret not in spec.shown + spec.error + spec.warning, case["note"]


@pytest.mark.parametrize("value", ["false", "NO", "n", "0", "off", "maybe", "", "2", '"yes please"'])
def test_unattended_is_never_taken_as_true_from_a_false_or_unclear_value(value):
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("phyllome.discover")
    logger.addHandler(handler)
    try:
        assert kernel_flag(f"quiet {UNATTENDED_KARG}={value}", UNATTENDED_KARG) is False
    finally:
        logger.removeHandler(handler)
    clear = value.lower() in ("false", "no", "n", "0", "off")
    assert any("not a boolean" in line for line in seen) is not clear, seen
    assert (boolean(UNATTENDED_KARG, f"{UNATTENDED_KARG}={value}")[1] is None) is clear


@pytest.mark.parametrize("value", ["", "=1", "=yes", "=True", "=ON", "=y"])
def test_unattended_clearly_true(value):
    assert kernel_flag(f"{UNATTENDED_KARG}{value}", UNATTENDED_KARG) is True
    assert kernel_flag(f"{UNATTENDED_KARG}{value} -- x", UNATTENDED_KARG) is True
    assert kernel_flag(f"x -- {UNATTENDED_KARG}{value}", UNATTENDED_KARG) is False
