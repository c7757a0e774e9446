"""What every part of the answer file shares: the format version, a few limits, and the rule error."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SecretStr

from ..core.facts import MIN_PASSPHRASE, VM_STORE  # noqa: F401 (MIN_PASSPHRASE is re-exported)

SCHEMA_VERSION = 1


class RuleError(ValueError):
    """A cross-field rule broken: one or more ``(key path relative to the model, message)`` pairs."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


Loc = tuple[str | int, ...]
Problems = list[tuple[Loc, str]]
DEFAULT_PROTECT = [VM_STORE]


def plain(value: Any) -> Any:
    """A model as plain values (secrets revealed) so that one rule function serves models and raw data."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {name: plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def enforce(rules: Any, model: BaseModel, *args: Any) -> None:
    problems = rules(plain(model), *args)
    if problems:
        raise RuleError(problems)


def str_value(data: dict, key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None
