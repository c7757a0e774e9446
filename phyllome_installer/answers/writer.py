"""TOML text from a model's dump (the answer file saved by the installer, [firstboot] saved into the target):
the one writer, used by files.py and models.py. Values are written by tomli-w; this module walks the tables and
strips the secrets first: a SecretStr becomes a comment in its table, never its value."""

from __future__ import annotations

from typing import Any

import tomli_w
from pydantic import SecretStr


def toml_scalar(value: Any) -> str:
    """One value as inline TOML (a list on one line), for the reference's tables."""
    if isinstance(value, list):
        return "[" + ", ".join(toml_scalar(v) for v in value) + "]"
    if isinstance(value, (dict, SecretStr)) or value is None:
        raise TypeError(f"cannot write {type(value).__name__} as a TOML value")
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def toml_table(data: dict[str, Any], path: list[str], out: list[str], array: bool = False) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and not _is_table_list(v)}
    if path:
        out.append(("\n[[{}]]" if array else "\n[{}]").format(".".join(path)))
    for key, value in scalars.items():
        if isinstance(value, SecretStr):
            out.append(f"# {key} = \"...\"  (removed: secrets are never written)")
        else:
            out.append(tomli_w.dumps({key: value}).rstrip("\n"))
    for key, value in data.items():
        if isinstance(value, dict):
            toml_table(value, path + [key], out)
        elif _is_table_list(value):
            for item in value:
                toml_table(item, path + [key], out, array=True)


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
