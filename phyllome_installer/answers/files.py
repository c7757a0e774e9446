"""Answer files in and out: TOML parsing (bounded, nesting-limited), validation with positions, the JSON
Schema, a one-line summary, and writing a config back without its secrets."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..core.errors import UserError
from ..core.facts import FIRSTBOOT_ANSWERS
from ..core.files import BoundedReadError, read_bounded
from ..core.secrets import REDACTOR, Redactor
from .errors import AnswerFileError, LoadResult, Problem, describe, dotted, syntax_problem
from .models import FirstBoot, InstallConfig, UrlPayload
from .positions import locate, positions
from .rules import raw_rules
from .writer import toml_table

MAX_NESTING = 32


def too_deep(text: str) -> tuple[int, int] | None:
    """Where arrays or inline tables nest deeper than :data:`MAX_NESTING` (line, column), outside strings."""
    depth, line, column, i, n = 0, 1, 0, 0, len(text)
    quote: str | None = None
    while i < n:
        char = text[i]
        column += 1
        if char == "\n":
            line, column = line + 1, 0
            if quote in ('"', "'"):
                quote = None  # a single-line string cannot span lines: the parser reports it
        elif quote is not None:
            if quote in ('"', '"""') and char == "\\":
                i += 2
                column += 1
                continue
            if text.startswith(quote, i):
                i += len(quote)
                column += len(quote) - 1
                quote = None
                continue
        elif char == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif char in "\"'":
            quote = char * 3 if text.startswith(char * 3, i) else char
            i += len(quote)
            column += len(quote) - 1
            continue
        elif char in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return line, column
        elif char in "]}":
            depth = max(depth - 1, 0)
        i += 1
    return None


def loads_guarded(text: str) -> dict[str, Any]:
    """``tomllib.loads`` behind the nesting guard: nesting deeper than :data:`MAX_NESTING` is refused as a TOML
    error (instead of a RecursionError), for the readers of TOML besides :func:`parse`."""
    deep = too_deep(text)
    if deep is not None:
        raise tomllib.TOMLDecodeError(f"arrays or tables nested deeper than {MAX_NESTING} levels "
                                      f"(at line {deep[0]}, column {deep[1]})")
    return tomllib.loads(text)


def parse(text: str, path: str = "<answers>", *, unattended: bool = True,
          redactor: Redactor | None = REDACTOR) -> LoadResult:
    """Validate an answer file's text. Never raises for bad input: problems come back in the result."""
    text = text.removeprefix("\ufeff")  # a byte-order mark, as Notepad writes it
    deep = too_deep(text)
    if deep is not None:
        return LoadResult(None, [Problem(path, deep[0], deep[1], "",
                                         f"arrays or tables nested deeper than {MAX_NESTING} levels")])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return LoadResult(None, [syntax_problem(path, exc)])
    except RecursionError:  # belt and braces: too_deep should have caught it
        return LoadResult(None, [Problem(path, 1, 1, "", "the file nests too deeply to be read")])
    return validate_data(data, path, unattended=unattended, redactor=redactor, where=positions(text))


def validate_data(data: dict[str, Any], path: str = "<interactive>", *, unattended: bool = False,
                  redactor: Redactor | None = REDACTOR, where: dict | None = None) -> LoadResult:
    """Validate answer-file data (from TOML or from the TUI's forms); every problem at once, never raises."""
    where = where or {}
    try:
        config = InstallConfig.model_validate(data, context={"unattended": unattended})
    except ValidationError as exc:
        described = [pair for error in exc.errors() for pair in describe(error)]
        described += raw_rules(data, unattended)
        problems: list[Problem] = []
        for loc, message in dict.fromkeys(described):
            (line, column), _ = locate(where, loc)
            problems.append(Problem(path, line, column, dotted(loc), message))
        problems.sort(key=lambda p: (p.line, p.column))
        register_raw_secrets(data, redactor)
        return LoadResult(None, problems)
    if redactor is not None:
        for secret in config.secrets():
            redactor.add(secret)
    return LoadResult(config, [], warnings_of(config, path, where))


SECRET_KEYS = frozenset({"passphrase", "password", "password_hash"})


def register_raw_secrets(data: Any, redactor: Redactor | None) -> None:
    """Even an invalid file's secrets must not reach a log: every string under a secret's key, wherever it is
    and whatever shape the rest of the file has (``users = 5`` is a type error to report, not a crash)."""
    if redactor is None:
        return
    stack = [data]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            if key in SECRET_KEYS and isinstance(value, str):
                redactor.add(value)
            elif isinstance(value, dict | list):
                stack.append(value)


def warnings_of(config: InstallConfig, path: str, where: dict) -> list[Problem]:
    def warn(loc: tuple[str | int, ...], message: str) -> Problem:
        (line, column), _ = locate(where, loc)
        return Problem(path, line, column, dotted(loc), message)

    out = []
    encryption = config.storage.encryption
    if not encryption.enabled:
        out.append(warn(("storage", "encryption"), "the VM store will not be encrypted"))
    elif encryption.passphrase_file and not os.path.exists(encryption.passphrase_file):
        out.append(warn(("storage", "encryption", "passphrase_file"),
                        f"{encryption.passphrase_file} does not exist here; it must exist at install time"))
    if isinstance(config.payload, UrlPayload) and not config.payload.gpg_verify:
        out.append(warn(("payload", "gpg_verify"), "the payload's signature will not be verified"))
    return out


#: An answer file is a few kilobytes; anything much larger is not one.
MAX_ANSWER_BYTES = 1 << 20


def load(path: Path | str, *, unattended: bool = True, redactor: Redactor | None = REDACTOR,
         name: str | None = None) -> LoadResult:
    """Read and validate an answer file. Unreadable files are a problem at line 1, not an exception.

    Only a regular file of at most :data:`MAX_ANSWER_BYTES` is read (never a FIFO or a device). ``name``: how
    problems name the file (the user's own path when ``path`` is a working copy).
    """
    name = name or str(path)
    try:
        raw = read_bounded(path, MAX_ANSWER_BYTES)
    except BoundedReadError as exc:
        return LoadResult(None, [Problem(name, 1, 1, "", f"cannot read the answer file: it {exc.reason}")])
    return parse_bytes(raw, name, unattended=unattended, redactor=redactor)


def parse_bytes(raw: bytes, name: str, *, unattended: bool = True,
                redactor: Redactor | None = REDACTOR) -> LoadResult:
    """Validate an answer file's bytes (UTF-8, a byte-order mark allowed)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return LoadResult(None, [Problem(name, line, 1, "", "the answer file is not UTF-8 text")])
    return parse(text, name, unattended=unattended, redactor=redactor)


def load_config(path: Path | str, **kwargs: Any) -> InstallConfig:
    """Like :func:`load`, but raises :class:`AnswerFileError` with every problem."""
    return config_or_raise(load(path, **kwargs))


def config_from_bytes(raw: bytes, name: str, **kwargs: Any) -> InstallConfig:
    """Like :func:`parse_bytes`, but raises :class:`AnswerFileError` with every problem."""
    return config_or_raise(parse_bytes(raw, name, **kwargs))


def config_or_raise(result: LoadResult) -> InstallConfig:
    if not result.ok:
        raise AnswerFileError(result.problems)
    assert result.config is not None
    return result.config


def load_firstboot(path: Path | None, root: Path) -> FirstBoot:
    """[firstboot] from ``path`` (a whole answer file or the saved section) or the target's saved copy; the
    defaults when there is none. Bad input: UserError naming every problem."""
    if path is None:
        path = Path(root) / FIRSTBOOT_ANSWERS
        if not path.exists():
            return FirstBoot()
    try:
        data = loads_guarded(read_bounded(path, 1 << 20).decode("utf-8-sig"))
    except (BoundedReadError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: cannot read [firstboot]: {exc}") from exc
    # Only [firstboot]: a whole answer file's install sections were the installer's business (a passphrase file
    # or a disk named there need not exist on the installed host).
    section = data.get("firstboot", {})
    if not isinstance(section, dict):
        raise UserError(f"{path}: firstboot: expected a table ([firstboot])")
    try:
        return FirstBoot.model_validate(section)
    except ValidationError as exc:
        raise UserError("; ".join(f"{path}: firstboot.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                  for e in exc.errors())) from exc


def json_schema() -> dict[str, Any]:
    schema = InstallConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Phyllome OS installer answer file, version 1"
    return schema


def summary(config: InstallConfig) -> str:
    """One line describing a valid config."""
    storage = config.storage
    target = storage.disk or "disk matching " + ", ".join(
        f"{k}={v}" for k, v in storage.match.model_dump(exclude_none=True).items())  # type: ignore[union-attr]
    enc = "encrypted VM store" if storage.encryption.enabled else "VM store NOT encrypted"
    payload = config.payload
    source = {"local": lambda p: f"{p.repo} {p.ref}", "url": lambda p: f"{p.url} {p.ref}",
              "container": lambda p: p.image}[payload.kind](payload)
    users = ", ".join(u.name for u in config.users)
    return (f"valid: install {payload.kind} payload {source} onto {target} ({storage.root_fs}, {enc}); "
            f"host {config.host.hostname}; users {users}; then {config.post.action}")


# ------------------------------------------------------------------------------------------- writing back

SAVED_HEADER = """\
# Phyllome OS installer answer file, written by phyllome-install.
# Secrets were removed: the passphrase and the users' passwords are not in this file.
# Add them back (see the commented lines) before using it for an unattended install.
"""

_SECRET_KEYS = {"passphrase", "password", "password_hash"}


def dumps(config: InstallConfig) -> str:
    """The config as TOML, every secret replaced by a comment. Keys left at their defaults are kept explicit."""
    data = config.model_dump(mode="python", exclude_none=True)
    data = {"version": data.pop("version"), **data}
    out: list[str] = []
    toml_table(data, [], out)
    return SAVED_HEADER + "\n".join(out).lstrip("\n") + "\n"


def save(config: InstallConfig, path: Path) -> Path:
    """Write the config without secrets, mode 0400. An existing file is replaced."""
    path = Path(path)
    text = dumps(config)
    for secret in config.secrets():
        if secret in text:  # belt and braces: never write a secret, whatever the schema grows into
            raise AssertionError("a secret reached the saved answer file")
    if path.exists():
        path.chmod(0o600)
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path
