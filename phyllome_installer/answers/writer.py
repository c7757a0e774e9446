"""TOML text from a model's dump (the answer file saved by the installer, [firstboot] saved into the target):
the one writer, used by files.py and models.py. A SecretStr becomes a comment, never its value."""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretStr


def toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # TOML basic strings share JSON's escapes for everything json.dumps emits.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_scalar(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def toml_table(data: dict[str, Any], path: list[str], out: list[str], array: bool = False) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and not _is_table_list(v)}
    if path:
        out.append(("\n[[{}]]" if array else "\n[{}]").format(".".join(path)))
    for key, value in scalars.items():
        if isinstance(value, SecretStr):
            out.append(f"# {key} = \"...\"  (removed: secrets are never written)")
        else:
            out.append(f"{key} = {toml_scalar(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            toml_table(value, path + [key], out)
        elif _is_table_list(value):
            for item in value:
                toml_table(item, path + [key], out, array=True)


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
