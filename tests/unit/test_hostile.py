"""Hostile answer files: nothing that validates may fail in the install because of its content.

The corpus in tests/data/answers/hostile/ (control characters in every kind of value, option-like refs and
remotes, sizes that overflow, nesting that would exhaust the parser) must each fail ``validate`` with the
FILE:LINE:COL its first line expects. The property test puts a control character into every string of a file
that uses every string key, one at a time: each mutation is refused, at that key.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phyllome_installer import answers
from phyllome_installer.cli import install_main
from phyllome_installer.core import cmdline
from tests.unit.test_answers import expected

DATA = Path(__file__).resolve().parents[1] / "data" / "answers"
HOSTILE = sorted((DATA / "hostile").glob("*.toml"))
EVERY = DATA / "good" / "every-string.toml"


def test_the_hostile_corpus_is_large():
    assert len(HOSTILE) >= 40


@pytest.mark.parametrize("path", HOSTILE, ids=[p.stem for p in HOSTILE])
def test_hostile_file_is_refused_at_its_line(path, capsys, tmp_path):
    code = install_main(["validate", str(path), "--log", str(tmp_path / "log")])
    out = capsys.readouterr()
    assert code == 2
    first = out.err.splitlines()[0]
    assert first.startswith(f"{path}{expected(path)}"), out.err
    assert "Traceback" not in out.err and "internal error" not in out.err
    # Nothing the attacker wrote reaches the terminal raw: no control character in what is printed.
    assert answers.control_character(out.err.replace("\n", "")) is None


# ------------------------------------------------------------------------------ property: control characters

def _toml(data: dict) -> str:
    """A minimal TOML writer for the test (json.dumps escapes every control character the TOML way)."""
    lines: list[str] = []

    def table(d: dict, path: list[str], array: bool = False) -> None:
        if path:
            lines.append(("[[{}]]" if array else "[{}]").format(".".join(path)))
        for key, value in d.items():
            if not isinstance(value, dict) and not (isinstance(value, list) and value and isinstance(value[0], dict)):
                lines.append(f"{json.dumps(key)} = {json.dumps(value)}")
        for key, value in d.items():
            if isinstance(value, dict):
                table(value, path + [key])
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                for item in value:
                    table(item, path + [key], array=True)

    table(data, [])
    return "\n".join(lines) + "\n"


def _string_paths(data, prefix=()):
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _string_paths(value, prefix + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _string_paths(value, prefix + (index,))
    elif isinstance(data, str):
        yield prefix


BASE = tomllib.loads(EVERY.read_text())
PATHS = sorted(_string_paths(BASE), key=str)
CONTROLS = st.sampled_from(["\n", "\r", "\0", "\t", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\x0b", "\x0c",
                            "\u202e", "\x01"])


def test_every_string_file_validates_and_has_many_strings():
    assert answers.parse(EVERY.read_text(), str(EVERY), redactor=None).ok
    assert len(PATHS) >= 25


def _set(data, path, value):
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def _get(data, path):
    for part in path:
        data = data[part]
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), char=CONTROLS, where=st.floats(0, 1))
def test_a_control_character_in_any_string_is_refused_at_that_key(path, char, where):
    data = json.loads(json.dumps(BASE))
    value = _get(data, path)
    cut = int(len(value) * where)
    _set(data, path, value[:cut] + char + value[cut:])
    result = answers.parse(_toml(data), "f.toml", redactor=None)
    assert not result.ok, (path, char)
    key = answers.dotted(path)
    assert any(p.key == key or key.startswith(p.key) for p in result.problems), (key, result.problems)


# ------------------------------------------------------------------------------ valid input refused before

def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + (DATA / "good" / "minimal.toml").read_bytes())
    result = answers.load(path, redactor=None)
    assert result.ok, result.problems
    # positions are unchanged by the mark
    broken = tmp_path / "bom-bad.toml"
    broken.write_bytes(b"\xef\xbb\xbf" + (DATA / "good" / "minimal.toml").read_bytes().replace(b'"admin"', b'"Admin"'))
    problem = answers.load(broken, redactor=None).problems[0]
    assert (problem.line, problem.column, problem.key) == (16, 1, "users[0].name")


@pytest.mark.parametrize("arg", ['dyndbg="file drivers/usb/* +p"', '"acpi_osi=!Windows 2020"', "quiet",
                                 "console=ttyS0,115200n8", 'a="b c" '.strip()])
def test_quoted_kernel_arguments_with_spaces_are_one_argument(arg):
    assert answers.kernel_arg(arg) == arg


@pytest.mark.parametrize("arg", ["a b", 'a="b', 'a="b c" d', "--", ""])
def test_more_or_less_than_one_kernel_argument_is_refused(arg):
    with pytest.raises(ValueError):
        answers.kernel_arg(arg)


def test_the_kernel_command_line_is_split_as_the_kernel_does():
    line = 'BOOT_IMAGE=/vmlinuz quiet dyndbg="file drivers/usb/* +p" "x=y z" phyllome.answers=hd:LABEL=A\\B:/a -- p.x=1'
    assert cmdline.words(line) == ["BOOT_IMAGE=/vmlinuz", "quiet", 'dyndbg="file drivers/usb/* +p"', '"x=y z"',
                                   "phyllome.answers=hd:LABEL=A\\B:/a"]
    assert cmdline.argument(line, "dyndbg") == "file drivers/usb/* +p"
    assert cmdline.argument(line, "x") == "y z"
    assert cmdline.argument(line, "phyllome.answers") == "hd:LABEL=A\\B:/a"  # no shell escapes
    assert cmdline.argument(line, "p.x") is None  # after --: for init
    assert cmdline.argument(line, "quiet") is None and cmdline.flag(line, "quiet")
    assert cmdline.argument("a=1 a=2", "a") == "2"


def test_quoted_kernel_arguments_reach_grub_as_one_word_each(tmp_path):
    import shutil
    import subprocess

    from phyllome_installer.bootloader import BootEntry, grub_cfg

    options = 'root=UUID=1234 rw dyndbg="file drivers/usb/* +p" "acpi_osi=!Windows 2020" quiet'
    cfg = grub_cfg([BootEntry("Phyllome OS 'stable' (ostree:0)", "/ostree/vmlinuz", "/ostree/initramfs.img",
                              options)], "abcd-1234")
    assert ("linux /ostree/vmlinuz root=UUID=1234 rw 'dyndbg=file drivers/usb/* +p' 'acpi_osi=!Windows 2020' quiet"
            in cfg)
    assert "menuentry 'Phyllome OS '\\''stable'\\'' (ostree:0)' {" in cfg
    checker = shutil.which("grub-script-check")  # GRUB's own parser (Debian's grub2-common, from make setup)
    assert checker
    path = tmp_path / "grub.cfg"
    path.write_text(cfg)
    assert subprocess.run([checker, str(path)], capture_output=True, text=True, check=False).returncode == 0


# ------------------------------------------------------------------------------ property: values of the wrong type

def _keys(data: dict, path: tuple = ()) -> list[tuple]:
    out = []
    for key, value in data.items():
        out.append(path + (key,))
        if isinstance(value, dict):
            out += _keys(value, path + (key,))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out += _keys(value[0], path + (key, 0))
    return out


WRONG = [5, True, "x", [1], [[1]], {"a": 1}, [{"a": 1}], 1.5]


@pytest.mark.parametrize("key", _keys(tomllib.loads((DATA / "good" / "reference.toml").read_text())),
                         ids=lambda k: ".".join(map(str, k)))
def test_a_value_of_the_wrong_type_at_any_key_is_a_problem_not_a_crash(key):
    """Every key of the reference file, top-level tables and arrays of tables included, set to each wrong type:
    validate reports it as a problem at a line, never as an internal error."""
    for wrong in WRONG:
        data = tomllib.loads((DATA / "good" / "reference.toml").read_text())
        node = data
        for part in key[:-1]:
            node = node[part]
        if isinstance(node[key[-1]], type(wrong)) and not isinstance(wrong, bool | list | dict):
            continue  # a value of the right type is no hostile case
        node[key[-1]] = wrong
        result = answers.parse(_toml(data), "f.toml", redactor=None)
        if not result.ok:
            assert result.problems and all(p.line >= 1 for p in result.problems)
