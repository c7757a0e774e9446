"""Where each key and value of a TOML document stands: ``(line, column)`` for every path.

``tomllib`` gives values but no positions. This scanner walks a document that ``tomllib`` has already
accepted and records, for each path (a tuple of keys and array indexes, as in a pydantic error's ``loc``),
the 1-based line and column of its key (or, for an array element, of the value). Tables and arrays of
tables map to their header. It is lenient: it only has to understand valid TOML.
"""

from __future__ import annotations

Path = tuple[str | int, ...]
Position = tuple[int, int]

_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.positions: dict[Path, Position] = {}
        self.aot_counts: dict[Path, int] = {}
        self._line_starts = [0]
        for index, char in enumerate(text):
            if char == "\n":
                self._line_starts.append(index + 1)

    # -- helpers
    def pos(self, index: int | None = None) -> Position:
        index = self.i if index is None else index
        lo, hi = 0, len(self._line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._line_starts[mid] <= index:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, index - self._line_starts[lo] + 1

    def peek(self, n: int = 1) -> str:
        return self.text[self.i : self.i + n]

    def record(self, path: Path, index: int) -> None:
        self.positions.setdefault(path, self.pos(index))

    def skip_ws(self, newlines: bool = False) -> None:
        while self.i < len(self.text):
            char = self.text[self.i]
            if char in " \t\r" or (newlines and char == "\n"):
                self.i += 1
            elif char == "#" and newlines:
                self.skip_comment()
            else:
                return

    def skip_comment(self) -> None:
        while self.i < len(self.text) and self.text[self.i] != "\n":
            self.i += 1

    # -- keys
    def key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self.skip_ws()
            char = self.peek()
            if char in ('"', "'"):
                parts.append(self.string())
            else:
                start = self.i
                while self.i < len(self.text) and self.text[self.i] in _BARE:
                    self.i += 1
                parts.append(self.text[start : self.i])
            self.skip_ws()
            if self.peek() == ".":
                self.i += 1
                continue
            return parts

    def resolve(self, keys: list[str]) -> Path:
        """Insert the current index of every array of tables along an absolute header path."""
        path: Path = ()
        for key in keys:
            path = path + (key,)
            if path in self.aot_counts:
                path = path + (self.aot_counts[path] - 1,)
        return path

    # -- values
    def string(self) -> str:
        quote = self.peek()
        if self.peek(3) == quote * 3:
            self.i += 3
            end = self.text.find(quote * 3, self.i)
            end = len(self.text) if end < 0 else end
            while self.text[end + 3 : end + 4] == quote:  # up to two quotes may close the content
                end += 1
            value = self.text[self.i : end]
            self.i = end + 3
            return value
        self.i += 1
        out = []
        while self.i < len(self.text) and self.text[self.i] != quote:
            if quote == '"' and self.text[self.i] == "\\":
                out.append(self.text[self.i : self.i + 2])
                self.i += 2
                continue
            out.append(self.text[self.i])
            self.i += 1
        self.i += 1
        return "".join(out)

    def value(self, path: Path) -> None:
        char = self.peek()
        if char in ('"', "'"):
            self.string()
        elif char == "[":
            self.array(path)
        elif char == "{":
            self.inline_table(path)
        else:
            while self.i < len(self.text) and self.text[self.i] not in ",]}\n#":
                self.i += 1

    def array(self, path: Path) -> None:
        self.i += 1
        index = 0
        while self.i < len(self.text):
            self.skip_ws(newlines=True)
            if self.peek() == "]":
                self.i += 1
                return
            self.record(path + (index,), self.i)
            self.value(path + (index,))
            index += 1
            self.skip_ws(newlines=True)
            if self.peek() == ",":
                self.i += 1

    def inline_table(self, path: Path) -> None:
        self.i += 1
        while self.i < len(self.text):
            self.skip_ws(newlines=True)
            if self.peek() == "}":
                self.i += 1
                return
            if self.peek() == ",":
                self.i += 1
                continue
            self.key_value(path)

    def key_value(self, table: Path) -> None:
        self.skip_ws()
        start = self.i
        keys = self.key()
        for depth in range(1, len(keys) + 1):
            self.record(table + tuple(keys[:depth]), start)
        self.skip_ws()
        if self.peek() == "=":
            self.i += 1
        self.skip_ws()
        self.value(table + tuple(keys))

    # -- document
    def document(self) -> dict[Path, Position]:
        table: Path = ()
        self.positions[()] = (1, 1)
        while self.i < len(self.text):
            self.skip_ws(newlines=True)
            if self.i >= len(self.text):
                break
            start = self.i
            if self.peek(2) == "[[":
                self.i += 2
                keys = self.key()
                parent = self.resolve(keys[:-1])
                path = parent + (keys[-1],)
                self.aot_counts[path] = self.aot_counts.get(path, 0) + 1
                table = path + (self.aot_counts[path] - 1,)
                self.record(path, start)
                self.record(table, start)
                self.i = self.text.find("]]", self.i) + 2
            elif self.peek() == "[":
                self.i += 1
                table = self.resolve(self.key())
                self.record(table, start)
                self.i = self.text.find("]", self.i) + 1
            else:
                self.key_value(table)
            self.skip_ws()
            if self.peek() == "#":
                self.skip_comment()
            # anything else on the line is left to the next iteration
            if self.i == start:  # never loop on something unexpected
                self.i += 1
        return self.positions


def positions(text: str) -> dict[Path, Position]:
    """Map every path in a valid TOML document to the (line, column) of its key or value."""
    return _Scanner(text).document()


def locate(table: dict[Path, Position], path: Path) -> tuple[Position, bool]:
    """The position of ``path``, or of its nearest recorded ancestor. The flag says whether it was exact."""
    for depth in range(len(path), -1, -1):
        if path[:depth] in table:
            return table[path[:depth]], depth == len(path)
    return (1, 1), False
