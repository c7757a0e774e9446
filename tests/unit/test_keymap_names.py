"""Keymap names as people know them (screens/keymap_names.py), read from XKB's rules list, hostile lists included."""

from __future__ import annotations

import os

from screens.keymap_names import options, shown, xkb_names

LIST = """! model
  pc105           Generic 105-key PC

! layout
  us              English (US)
  gr              Greek
  latam           Spanish (Latin American)

! variant
  neo             de: German (Neo 2)
  nodeadkeys      gr: Greek (no dead keys)
  bad name        de: nonsense

! option
  grp             Switching to another layout
"""


def test_names_come_from_the_written_table_then_xkb_and_the_keymap_name_stays_visible(tmp_path):
    path = tmp_path / "base.lst"
    path.write_text(LIST)
    xkb = xkb_names(path)
    assert xkb == {"us": "English (US)", "gr": "Greek", "latam": "Spanish (Latin American)",
                   "de-neo": "German (Neo 2)", "gr-nodeadkeys": "Greek (no dead keys)"}
    assert shown("de-nodeadkeys", xkb) == "German (no dead keys, de-nodeadkeys)"
    assert shown("fr", xkb) == "French (AZERTY, fr)"
    assert shown("gr", xkb) == "Greek (gr)" and shown("de-neo", xkb) == "German (Neo 2, de-neo)"
    assert shown("sun-pl", xkb) == "sun-pl"  # unknown: the name itself, never a guess
    assert options(["us", "gr", "de", "sun-pl", "latam"], xkb) == [
        ("English (US, us)", "us"), ("German (de)", "de"), ("Greek (gr)", "gr"),
        ("Spanish (Latin American, latam)", "latam"), ("sun-pl", "sun-pl")]


def test_a_hostile_rules_list_gives_plain_names(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge"
    huge.write_bytes(b"! layout\n" + b"x" * (2 << 20))
    binary = tmp_path / "binary"
    binary.write_bytes(b"! layout\n  de  Ger\x1b[2Jman\x07\x9b\n  \xff\xfe  x\n")
    for path in (fifo, huge, tmp_path / "missing", tmp_path):
        assert xkb_names(path) == {}, path
    assert xkb_names(binary) == {"de": "Ger[2Jman"}  # control characters never reach the screen
