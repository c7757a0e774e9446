from __future__ import annotations

from phyllome_installer.answers.positions import locate, positions

DOC = '''# comment
title = "x"  # trailing
[a]
b.c = 1
list = [
  "one",   # comment
  { k = 2 },
]
"quoted key" = """multi
line"""
[[u]]
name = "first"
[u.sub]
x = 1
[[u]]
name = "second"
'''


def test_positions_of_keys_tables_elements_and_arrays_of_tables():
    table = positions(DOC)
    assert table[("title",)] == (2, 1)
    assert table[("a",)] == (3, 1)
    assert table[("a", "b", "c")] == (4, 1)
    assert table[("a", "list", 0)] == (6, 3)
    assert table[("a", "list", 1, "k")] == (7, 5)
    assert table[("a", "quoted key")] == (9, 1)
    assert table[("u", 0)] == (11, 1) and table[("u", 0, "name")] == (12, 1)
    assert table[("u", 0, "sub", "x")] == (14, 1)
    assert table[("u", 1, "name")] == (16, 1)


def test_locate_falls_back_to_the_nearest_table():
    table = positions(DOC)
    assert locate(table, ("a", "missing")) == ((3, 1), False)
    assert locate(table, ("nothing", "here")) == ((1, 1), False)
    assert locate(table, ("title",)) == ((2, 1), True)
