"""Text whose long lines wrap under their own text (a hanging indent), never back to column 0: a key and its value
("  Disk:    /var/tmp/..."), a state and its title ("[ok] ..."), a column ("os        win11") keep their shape on an
80-column console."""

from __future__ import annotations

import re

from rich.cells import cell_len
from rich.measure import Measurement
from rich.text import Text
from textual.widgets import Static

#: After the leading spaces: a key of up to four words ending in ':', a short state mark ([ok]), or the first
#: column (two spaces on).
HEAD = re.compile(r"(\s*)(\S+(?: \S+){0,3}:\s+|\[[^\]]{1,4}\]\s+|\S+(?: \S+)*?\s{2,})?")


def indent_of(line: str, width: int) -> int:
    match = HEAD.match(line)
    leading = len(match.group(1)) if match else 0
    indent = match.end() if match and match.group(2) else leading
    return indent if indent <= width // 2 else min(leading, width // 2)


def hang(line: str, width: int, console) -> list[Text]:  # type: ignore[no-untyped-def]
    if cell_len(line) <= width or width < 8:
        return [Text(line, no_wrap=True, end="")]
    indent = indent_of(line, width)
    body = Text(line[indent:]).wrap(console, width - indent)
    out = []
    for number, part in enumerate(body):
        out.append(Text(line[:indent] if number == 0 else " " * indent, no_wrap=True, end="") + part)
    return out


class HangingText:
    """A rich renderable: each line of `text` wrapped with its hanging indent at the width it is drawn in."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __rich_console__(self, console, options):  # type: ignore[no-untyped-def]
        lines = [part for line in self.text.split("\n") for part in hang(line, options.max_width, console)]
        for number, line in enumerate(lines):
            yield line
            if number < len(lines) - 1:
                yield Text("\n", end="")

    def __rich_measure__(self, console, options) -> Measurement:  # type: ignore[no-untyped-def]
        longest = max((cell_len(line) for line in self.text.split("\n")), default=0)
        return Measurement(1, min(longest, options.max_width))


class Hanging(Static):
    """A Static of plain text (no markup) drawn with hanging indents."""

    def __init__(self, text: str = "", **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__("", **kwargs)
        self.text = text

    def update(self, content: object = "") -> None:  # type: ignore[override]
        self.text = str(content)
        self.refresh(layout=True)

    def render(self) -> HangingText:  # type: ignore[override]
        return HangingText(self.text)
