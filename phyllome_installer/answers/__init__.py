"""The answer file, version 1: a pydantic schema (``InstallConfig``), TOML loading and ``FILE:LINE:COL`` errors.

Every problem is reported at once, each as ``FILE:LINE:COL: dotted.key: message``, and never as a traceback.
Cross-field rules raise :class:`RuleError`, which names the keys it is about, so that its line is the line of
that key rather than of the table.

One job per module: ``base`` (version, limits, the rule error), ``values`` (value types, control characters),
``rules`` (cross-field rules, wipe consent), ``models`` (the schema), ``positions`` (where each key is in the
TOML text), ``errors`` (problems with their positions), ``writer`` (TOML text), ``files`` (load, validate,
save).
"""

from .base import DEFAULT_PROTECT, MIN_PASSPHRASE, SCHEMA_VERSION, RuleError
from .errors import AnswerFileError, LoadResult, Problem, dotted
from .files import (
    MAX_ANSWER_BYTES,
    MAX_NESTING,
    config_from_bytes,
    dumps,
    json_schema,
    load,
    load_config,
    load_firstboot,
    loads_guarded,
    parse,
    parse_bytes,
    save,
    summary,
    validate_data,
)
from .models import (
    ContainerPayload,
    DiskMatch,
    Encryption,
    FirstBoot,
    Host,
    InstallConfig,
    LocalPayload,
    Payload,
    Post,
    PrimaryVm,
    Section,
    Storage,
    UrlPayload,
    User,
)
from .rules import wipe_conflicts, wipe_names_disk
from .values import control_character, kernel_arg, parse_size, size_text, size_value, timezones
from .writer import toml_scalar

__all__ = [
    "DEFAULT_PROTECT", "MAX_ANSWER_BYTES", "MAX_NESTING", "MIN_PASSPHRASE", "SCHEMA_VERSION", "AnswerFileError",
    "ContainerPayload", "DiskMatch", "Encryption", "FirstBoot", "Host", "InstallConfig", "LoadResult",
    "LocalPayload", "Payload", "Post", "PrimaryVm", "Problem", "RuleError", "Section", "Storage", "UrlPayload",
    "User", "config_from_bytes", "control_character", "dotted", "dumps", "json_schema", "kernel_arg", "load",
    "load_config", "load_firstboot", "loads_guarded", "parse", "parse_bytes", "parse_size", "save", "size_text",
    "size_value", "summary", "timezones",
    "toml_scalar", "validate_data", "wipe_conflicts", "wipe_names_disk",
]
