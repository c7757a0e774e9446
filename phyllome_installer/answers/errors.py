"""Problems with where they are: each pydantic error turned into ``FILE:LINE:COL: dotted.key: message`` a
user can act on, every problem at once."""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from ..core.errors import UserError
from .base import RuleError
from .models import ContainerPayload, InstallConfig, LocalPayload, UrlPayload
from .values import control_character


@dataclass(frozen=True)
class Problem:
    """One problem in an answer file, with where it is."""

    path: str
    line: int
    column: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


@dataclass
class LoadResult:
    config: InstallConfig | None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.problems


class AnswerFileError(UserError):
    """The answer file is invalid. ``str()`` is every problem, one per line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str) and (control_character(part) or not part.replace("_", "").isalnum()):
            part = json.dumps(part)  # a hostile key is shown quoted and escaped, never raw on a terminal
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that holds the keys at ``loc`` (for "did you mean" suggestions)."""
    model: Any = InstallConfig
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if info is None:
            return None
        model = unwrap(info.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (list, Union) or str(origin) == "types.UnionType":
            models = [a for a in get_args(annotation) if a is not type(None)]
            if len(models) != 1:
                return None
            annotation = models[0]
        else:
            return annotation


TAGS = {"local": LocalPayload, "url": UrlPayload, "container": ContainerPayload}


def describe(error: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """Turn one pydantic error into ``(loc, message)`` pairs a user can act on."""
    loc = tuple(error["loc"])
    kind = error["type"]
    # A tagged union puts the tag in the loc: payload.url.url -> payload.url
    if len(loc) >= 2 and loc[0] == "payload" and loc[1] in TAGS:
        loc = (loc[0],) + loc[2:]
        model: type[BaseModel] | None = TAGS[error["loc"][1]]
    else:
        model = model_at(loc[:-1])
    ctx_error = (error.get("ctx") or {}).get("error")
    if isinstance(ctx_error, RuleError):
        return [(loc + sub, message) for sub, message in ctx_error.problems]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        owners = [tag for tag, cls in TAGS.items() if key in cls.model_fields]
        if loc[:1] == ("payload",) and owners and model is not None:
            return [(loc, f"{key} is only used with kind = " + " or ".join(f'"{o}"' for o in owners))]
        fields = list(model.model_fields) if model else []
        close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else (f" (known keys: {', '.join(fields)})" if fields else "")
        return [(loc, f"unknown key{hint}")]
    if kind == "missing":
        what = "table" if str(loc[-1]) in ("storage", "payload") else "key"
        return [(loc, f"missing required {what}")]
    if kind == "too_short" and loc == ("users",):
        return [(loc, "at least one [[users]] entry who can log in is needed")]
    if kind == "union_tag_invalid":
        return [(loc + ("kind",), f"kind must be one of: {', '.join(TAGS)}")]
    if kind == "union_tag_not_found":
        return [(loc, "missing required key 'kind' (local, url or container)")]
    if kind == "literal_error":
        return [(loc, "must be one of: " + error["ctx"]["expected"].replace("'", '"'))]
    if kind == "string_pattern_mismatch":
        return [(loc, "invalid value: " + PATTERN_HELP.get(loc[-1] if not isinstance(loc[-1], int) else loc[-2],
                                                            "does not have the expected form"))]
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    elif kind in ("string_type", "int_type", "bool_type", "list_type", "model_type", "model_attributes_type",
                  "int_parsing", "bool_parsing", "dict_type"):
        message = f"wrong type: {message[0].lower()}{message[1:]}"
    return [(loc, message)]


PATTERN_HELP = {
    "keyboard": "a console keymap name such as \"us\" or \"de-nodeadkeys\"",
    "locale": "a locale such as \"en_US.UTF-8\"",
    "url": "an http://, https:// or file:// URL",
    "groups": "a group name (lowercase letters, digits, '_' or '-')",
    "name": "letters, digits, '_', '.', '-', starting with a letter or digit",
    "os": "a libosinfo short id such as \"win11\"",
    "remote": "letters, digits, '_', '.' or '-', starting with a letter, digit or '_'",
    "ref": "an ostree ref: parts of letters, digits, '_', '-' and '.' separated by '/', each starting with a "
           "letter, digit or '_' (such as \"phyllome/x86_64/stable\")",
    "full_name": "any text up to 255 characters without ':'",
    "image": "an image reference without spaces, starting with a letter or digit",
}


def syntax_problem(path: str, exc: tomllib.TOMLDecodeError) -> Problem:
    text = str(exc)
    match = re.search(r"\(at line (\d+), column (\d+)\)", text)
    line, column = (int(match.group(1)), int(match.group(2))) if match else (1, 1)
    message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", text)
    return Problem(path, line, column, "", f"TOML syntax error: {message}")
