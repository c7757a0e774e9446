"""The answer file, version 1: a pydantic schema (``InstallConfig``), TOML loading and ``FILE:LINE:COL`` errors.

Every problem is reported at once, each as ``FILE:LINE:COL: dotted.key: message``, and never as a traceback.
Cross-field rules raise :class:`RuleError`, which names the keys it is about, so that its line is the line of
that key rather than of the table.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import json
import os
import re
import tomllib
import unicodedata
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from .core import cmdline
from .core.errors import UserError
from .core.files import BoundedReadError, read_bounded
from .core.secrets import REDACTOR, Redactor
from .tomlpos import locate, positions

SCHEMA_VERSION = 1
MIN_PASSPHRASE = 8


class RuleError(ValueError):
    """A cross-field rule broken: one or more ``(key path relative to the model, message)`` pairs."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


Loc = tuple[str | int, ...]
Problems = list[tuple[Loc, str]]
DEFAULT_PROTECT = ["/var/lib/libvirt/images"]


def _plain(value: Any) -> Any:
    """A model as plain values (secrets revealed) so that one rule function serves models and raw data."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _enforce(rules: Any, model: BaseModel, *args: Any) -> None:
    problems = rules(_plain(model), *args)
    if problems:
        raise RuleError(problems)


def _str(data: dict, key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


# ------------------------------------------------------------------------------------------- value types

_SIZE = re.compile(r"\s*(\d{1,20}(?:\.\d{1,9})?)\s*([KMGTP]i?B|B)\s*", re.IGNORECASE | re.ASCII)
#: No disk, memory or file the installer deals with is larger (8 EiB): anything above is a typo or an attack.
MAX_SIZE = 1 << 63
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50}


def _shown(text: str, limit: int = 40) -> str:
    """A user's value quoted for a message, cut short when long."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def parse_size(text: str) -> int:
    """Bytes in a size such as ``600MiB``, ``1.5TB`` or ``512B``."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"{_shown(text)} is not a size: write a number and a unit, such as \"600MiB\" or "
                         "\"1.5TB\"")
    whole, _, fraction = match.group(1).partition(".")
    unit = _UNITS[match.group(2).lower()]
    size = int(whole) * unit + (int(fraction) * unit) // 10 ** len(fraction) if fraction else int(whole) * unit
    if size > MAX_SIZE:
        raise ValueError(f"{_shown(text)} is too large (more than 8 EiB)")
    return size


def _size(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("a size is a string with a unit, such as \"200GiB\" (a bare number is ambiguous)")
    if parse_size(value) <= 0:
        raise ValueError("a size must be greater than zero")
    return value.strip()


Size = Annotated[str, BeforeValidator(_size)]

_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE | re.ASCII)


def _hostname(value: str) -> str:
    if not value or len(value) > 253:
        raise ValueError("a hostname has 1 to 253 characters")
    for label in value.split("."):
        if not _HOST_LABEL.fullmatch(label):
            raise ValueError(
                f"{value!r} is not a valid hostname (RFC 1123): labels of letters, digits and '-', "
                "1 to 63 characters, not starting or ending with '-'"
            )
    if value.split(".")[-1].isdigit():
        raise ValueError(f"{value!r} is not a valid hostname: the last label cannot be all digits")
    return value


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _timezone(value: str) -> str:
    if value in ("UTC", "Etc/UTC") or value in _timezones():
        return value
    close = difflib.get_close_matches(value, _timezones(), n=1, cutoff=0.7)
    hint = f"; did you mean {close[0]!r}?" if close else " (use a name such as \"Europe/Paris\" or \"UTC\")"
    raise ValueError(f"unknown timezone {value!r}{hint}")


_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
RESERVED_USERS = frozenset(
    "root bin daemon adm lp sync shutdown halt mail operator games ftp nobody systemd-network "
    "systemd-resolve dbus polkitd sshd qemu libvirt tss chrony".split()
)


def _username(value: str) -> str:
    if not _USER.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid user name: 1 to 32 characters, lowercase letters, digits, '_' or '-', "
            "starting with a letter or '_'"
        )
    if value in RESERVED_USERS:
        raise ValueError(f"{value!r} is a system account; choose another name for the admin user")
    return value


def _kernel_arg(value: str) -> str:
    if not value:
        raise ValueError("a kernel argument cannot be empty")
    if value.count('"') % 2:
        raise ValueError(f"{value!r} has an unbalanced double quote")
    if not cmdline.is_one_word(value):
        raise ValueError(f"{value!r} is more than one kernel argument: give each as its own list item (spaces "
                         "belong inside double quotes, as in dyndbg=\"file drivers/usb/* +p\")")
    if value.startswith(("root=", '"root=')):
        raise ValueError("root= is set by the installer from the partition it creates")
    return value


def _absolute(value: str) -> str:
    path = PurePosixPath(value)
    if not path.is_absolute():
        raise ValueError(f"{value!r} is not an absolute path")
    if ".." in path.parts:
        raise ValueError(f"{value!r} must not contain '..'")
    return value


_HASH = re.compile(r"\$(1|2[abxy]|5|6|7|y|gy)\$[./A-Za-z0-9$=,+-]+")
_SSH_KEY = re.compile(
    r"(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)"
    r"(-cert-v01@openssh\.com)? +[A-Za-z0-9+/]+={0,3}( +[^ ].*)?"
)


def _ssh_key(value: str) -> str:
    if not _SSH_KEY.fullmatch(value.strip(" ")):
        raise ValueError("not an OpenSSH public key (expected \"ssh-ed25519 AAAA... comment\")")
    return value.strip(" ")


def _password(value: SecretStr) -> SecretStr:
    if not value.get_secret_value():
        raise ValueError("the password is empty")
    return value


def _password_hash(value: SecretStr) -> SecretStr:
    if not _HASH.fullmatch(value.get_secret_value()):
        raise ValueError("not a crypt(3) hash (expected \"$6$...\" or \"$y$...\")")
    return value


def _glob(value: str) -> str:
    if not value:
        raise ValueError("an empty pattern matches nothing")
    return value


def _state_dir(value: str) -> str:
    parts = PurePosixPath(value).parts
    if parts[:2] != ("/", "var") or len(parts) < 3:
        raise ValueError(f"{value!r} is not below /var: on an ostree host only /var is writable and kept across "
                         "upgrades (e.g. \"/var/lib/libvirt/images\")")
    return value


Hostname = Annotated[str, AfterValidator(_hostname)]
Timezone = Annotated[str, AfterValidator(_timezone)]
UserName = Annotated[str, AfterValidator(_username)]
KernelArg = Annotated[str, AfterValidator(_kernel_arg)]
AbsolutePath = Annotated[str, AfterValidator(_absolute)]
StateDir = Annotated[str, AfterValidator(_absolute), AfterValidator(_state_dir)]
SshKey = Annotated[str, AfterValidator(_ssh_key)]
Glob = Annotated[str, AfterValidator(_glob)]
Keymap = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Locale = Annotated[str, Field(pattern=r"^(C|POSIX|[a-z]{2,3}(_[A-Z]{2})?)(\.[A-Za-z0-9-]+)?(@[A-Za-z0-9]+)?$")]


# ------------------------------------------------------------------------------------------- cross-field rules
# Each takes plain values (a model's or the raw TOML's) and tolerates wrong types, which field validation
# reports on its own; so the rules can run on raw data too when a section has field errors.


def match_rules(d: dict) -> Problems:
    out: Problems = []
    if not any(d.get(k) is not None for k in ("model", "serial", "transport", "min_size", "max_size")):
        out.append(((), "give at least one rule: model, serial, transport, min_size or max_size"))
    low, high = _str(d, "min_size"), _str(d, "max_size")
    try:
        if low and high and parse_size(low) > parse_size(high):
            out.append((("max_size",), f"max_size {high} is smaller than min_size {low}"))
    except ValueError:
        pass
    return out


def encryption_rules(d: dict) -> Problems:
    out: Problems = []
    protect = d.get("protect", DEFAULT_PROTECT)
    if d.get("enabled", True) is True:
        passphrase, has_file = d.get("passphrase"), d.get("passphrase_file") is not None
        if passphrase is None and not has_file:
            out.append(((), "encryption is enabled: set passphrase or passphrase_file"))
        elif passphrase is not None and has_file:
            out.append((("passphrase_file",), "set passphrase or passphrase_file, not both"))
        elif isinstance(passphrase, str) and len(passphrase) < MIN_PASSPHRASE:
            out.append((("passphrase",), f"the passphrase needs at least {MIN_PASSPHRASE} characters"))
        if protect == []:
            out.append((("protect",), "encryption is enabled but protect lists no directory"))
    if isinstance(protect, list) and all(isinstance(p, str) for p in protect) and len(set(protect)) != len(protect):
        out.append((("protect",), "a directory is listed twice"))
    return out


def storage_rules(d: dict, unattended: bool) -> Problems:
    out: Problems = []
    disk, wipe = _str(d, "disk"), _str(d, "wipe")
    if d.get("disk") is not None and d.get("match") is not None:
        out.append((("match",), "give either disk or [storage.match], not both"))
    elif d.get("disk") is None and d.get("match") is None:
        out.append(((), "missing target: set disk, or add a [storage.match] table"))
    if disk is not None and not disk.startswith("/dev/"):
        out.append((("disk",), f"{disk!r} is not a device path: expected /dev/..."))
    if d.get("compression") is True and d.get("root_fs", "f2fs") != "f2fs":
        out.append((("compression",), "compression needs root_fs = \"f2fs\""))
    if d.get("wipe") is None:
        if unattended:
            out.append(((), "missing wipe: an unattended install erases the disk only with wipe = "
                            "the disk's serial, by-id name or path"))
    elif wipe is not None and disk is not None and wipe_conflicts(wipe, disk):
        out.append((("wipe",), f"wipe = {wipe!r} does not name the target disk {disk!r}"))
    elif wipe is not None and d.get("match") is not None and not wipe.strip():
        out.append((("wipe",), "wipe is empty"))
    return out


def user_rules(d: dict) -> Problems:
    out: Problems = []
    has_password, has_hash = d.get("password") is not None, d.get("password_hash") is not None
    if has_password and has_hash:
        out.append((("password_hash",), "give password or password_hash, not both"))
    elif not has_password and not has_hash and not d.get("ssh_keys"):
        name = _str(d, "name") or "this user"
        out.append(((), f"user {name!r} cannot log in: set password, password_hash or ssh_keys"))
    return out


def config_rules(d: dict) -> Problems:
    out: Problems = []
    users = d.get("users")
    if not isinstance(users, list):
        return out
    names = [u.get("name") if isinstance(u, dict) else None for u in users]
    for index, name in enumerate(names):
        if isinstance(name, str) and name in names[:index]:
            out.append((("users", index, "name"), f"user {name!r} is defined twice"))
    return out


def raw_rules(data: dict, unattended: bool) -> Problems:
    """The cross-field rules over raw TOML data, for sections whose model validation never reached them."""
    out: Problems = []
    storage = data.get("storage")
    if isinstance(storage, dict):
        out += [(("storage",) + loc, m) for loc, m in storage_rules(storage, unattended)]
        for key, rules in (("match", match_rules), ("encryption", encryption_rules)):
            if isinstance(storage.get(key), dict):
                out += [(("storage", key) + loc, m) for loc, m in rules(storage[key])]
    users = data.get("users")
    if isinstance(users, list):
        for index, user in enumerate(users):
            if isinstance(user, dict):
                out += [(("users", index) + loc, m) for loc, m in user_rules(user)]
    return out + config_rules(data)


# ------------------------------------------------------------------------------------------- models


#: Unicode categories that never belong in a value that reaches a file or a command: C0/C1 controls (newline,
#: carriage return, NUL, escape...), and the line and paragraph separators that str.splitlines() splits on.
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
#: Bidirectional overrides and isolates: they make a name read differently from what it is ("Trojan Source").
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def control_character(text: str) -> str | None:
    """A description of the first control character in ``text`` (never the text itself), or None."""
    for index, char in enumerate(text):
        if unicodedata.category(char) in _CONTROL_CATEGORIES or char in _BIDI:
            name = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\0": "a NUL"}.get(
                char, f"the control character U+{ord(char):04X}")
            return f"{name} at character {index + 1}"
    return None


def control_problems(data: dict) -> Problems:
    """Control characters in the strings (and lists of strings) directly in one table."""
    out: Problems = []
    for key, value in data.items():
        items = [((key,), value)] if isinstance(value, str) else (
            [((key, index), item) for index, item in enumerate(value) if isinstance(item, str)]
            if isinstance(value, list) else [])
        for loc, item in items:
            found = control_character(item)
            if found:
                out.append((loc, f"contains {found}: control characters are not allowed"))
    return out


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True, strict=True,
                              hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        """Every string of the answer file reaches a file or a command: none may hold a control character."""
        if isinstance(data, dict):
            problems = control_problems(data)
            if problems:
                raise RuleError(problems)
        return data


class DiskMatch(Section):
    """Choose the target disk by rules instead of naming it. All given rules must hold."""

    model: Glob | None = None
    """Shell glob on the disk's model, e.g. "Samsung*"."""
    serial: Glob | None = None
    """Shell glob on the disk's serial number."""
    transport: Literal["nvme", "sata", "sas", "scsi", "usb", "virtio", "mmc", "loop"] | None = None
    """Only disks on this transport."""
    min_size: Size | None = None
    """Only disks at least this big, e.g. "200GiB"."""
    max_size: Size | None = None
    """Only disks at most this big."""
    pick: Literal["largest", "smallest", "only"] = "only"
    """Which matching disk to take: the largest, the smallest, or fail unless exactly one matches."""

    @model_validator(mode="after")
    def _check(self) -> DiskMatch:
        _enforce(match_rules, self)
        return self

    def accepts(self, *, model: str, serial: str, transport: str, size: int) -> bool:
        return (
            (self.model is None or fnmatch.fnmatchcase(model, self.model))
            and (self.serial is None or fnmatch.fnmatchcase(serial, self.serial))
            and (self.transport is None or transport == self.transport)
            and (self.min_size is None or size >= parse_size(self.min_size))
            and (self.max_size is None or size <= parse_size(self.max_size))
        )


class Encryption(Section):
    """fscrypt protection of the VM store (filesystem-level encryption on the F2FS or ext4 root)."""

    enabled: bool = True
    """Encrypt the directories listed in `protect`."""
    passphrase: SecretStr | None = None
    """The passphrase that unlocks the VM store (at least 8 characters). Never logged or written back."""
    passphrase_file: AbsolutePath | None = None
    """Read the passphrase from this file at install time instead (first line; at least 8 characters)."""
    protect: list[StateDir] = Field(default_factory=lambda: list(DEFAULT_PROTECT))
    """Directories of the installed system to encrypt: below /var, the only writable, persistent place of an
    ostree host (e.g. "/var/lib/libvirt/images", "/var/home")."""
    recovery_key: bool = True
    """Also add a generated recovery protector; its code is shown once at the end of the install."""

    @model_validator(mode="after")
    def _check(self) -> Encryption:
        _enforce(encryption_rules, self)
        return self


class Storage(Section):
    """The target disk and how to lay it out. The whole disk is erased."""

    disk: str | None = None
    """The target disk: a path such as /dev/nvme0n1, or a stable /dev/disk/by-id/... or by-path name."""
    match: DiskMatch | None = None
    """Rules that choose the target disk (instead of `disk`)."""
    wipe: str | None = None
    """Consent to erase, required for an unattended install: the serial, by-id name or path of the target disk
    (with [storage.match]: the serial of the disk, or "matched" to erase whichever disk the rules choose)."""
    root_fs: Literal["f2fs", "ext4"] = "f2fs"
    """Root filesystem: f2fs (default), or ext4 for kernels without F2FS (e.g. sandboxes)."""
    compression: bool = False
    """F2FS transparent compression (f2fs only)."""
    encryption: Encryption = Field(default_factory=lambda: Encryption(enabled=False))
    """fscrypt encryption of the VM store. Without this table, the VM store is not encrypted."""

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Storage:
        _enforce(storage_rules, self, bool(info.context and info.context.get("unattended")))
        return self


_KERNEL_NAME = re.compile(r"^(sd[a-z]+|hd[a-z]+|vd[a-z]+|xvd[a-z]+|nvme\d+n\d+|mmcblk\d+|loop\d+)$")


def wipe_conflicts(wipe: str, disk: str) -> bool:
    """Offline: whether the consent provably names another disk than the target.

    A serial cannot be checked without the machine (that happens before anything is written, against the
    probed disk); two names of the same kind (kernel names, or by-id names) can.
    """
    wipe = wipe.strip()
    if not wipe:
        return True
    if wipe_names_disk(wipe, disk):
        return False
    kind = _name_kind
    if kind(wipe) == kind(disk) != "other":
        return True
    if kind(disk) == "by-id" and kind(wipe) == "other" and not os.path.basename(disk).startswith("wwn-"):
        return True  # by-id names other than wwn- end in the serial; wipe_names_disk checked that
    return False


def _name_kind(name: str) -> str:
    if "/by-id/" in name:
        return "by-id"
    if "/by-path/" in name:
        return "by-path"
    if _KERNEL_NAME.match(os.path.basename(name)) and (name.startswith("/dev/") or "/" not in name):
        return "kernel"
    return "other"


def wipe_names_disk(wipe: str, disk: str, *, serial: str | None = None, by_id: Iterable[str] = ()) -> bool:
    """Whether the consent string names the disk: its path, its by-id name, or its serial.

    Offline (no ``serial`` known) a serial is accepted when the target is a by-id name that ends in it.
    """
    wipe = wipe.strip()
    if not wipe:
        return False
    names = {disk, os.path.basename(disk), *by_id, *(os.path.basename(b) for b in by_id)}
    if wipe in names or (serial and wipe == serial):
        return True
    if "/by-id/" in disk or any("/by-id/" in b for b in by_id):
        ids = [os.path.basename(b) for b in (disk, *by_id) if "/by-id/" in b]
        return any(i.endswith(("_" + wipe, "-" + wipe)) for i in ids)
    return False


#: ostree's ref grammar (``ostree_validate_rev``): slash-separated parts of letters, digits, '_', '-', '.', each
#: starting with a letter, digit or '_'. So a ref never starts with '-' and never reaches ostree as an option.
_REF_PATTERN = r"^[A-Za-z0-9_][-._A-Za-z0-9]*(/[A-Za-z0-9_][-._A-Za-z0-9]*)*$"
Ref = Annotated[str, Field(pattern=_REF_PATTERN, max_length=255)]


class LocalPayload(Section):
    """An ostree repository on the install medium."""

    kind: Literal["local"]
    """local: pull-local from a repository on the medium."""
    repo: AbsolutePath
    """Path of the ostree repository."""
    ref: Ref
    """The ref to deploy, e.g. "phyllome/x86_64/stable"."""


class UrlPayload(Section):
    """An ostree repository served over HTTP(S)."""

    kind: Literal["url"]
    """url: add a remote and pull from it."""
    url: Annotated[str, Field(pattern=r"^(https?|file)://\S+$")]
    """URL of the ostree repository."""
    ref: Ref
    """The ref to deploy."""
    gpg_verify: bool = True
    """Verify the commit's GPG signature (needs the remote's keys on the medium)."""
    remote: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")] = "phyllome"
    """Name of the ostree remote to configure."""

    @model_validator(mode="after")
    def _no_credentials(self) -> UrlPayload:
        if "@" in self.url.split("://", 1)[-1].split("/", 1)[0]:
            raise RuleError([(("url",), "credentials in the URL are not supported: they would be visible in the "
                                        "process list and stored in the installed system's repository "
                                        "configuration; serve the repository without them (or over a "
                                        "private network)")])
        return self


class ContainerPayload(Section):
    """An ostree-native container image."""

    kind: Literal["container"]
    """container: deploy an ostree-native container image."""
    image: Annotated[str, Field(pattern=r"^[A-Za-z0-9][^\s]*$", max_length=4096)]
    """The image reference, e.g. "registry.example.org/phyllome/host:stable"."""
    transport: Literal["registry", "oci", "oci-archive", "containers-storage"] = "registry"
    """How to reach the image."""


Payload = Annotated[Union[LocalPayload, UrlPayload, ContainerPayload], Field(discriminator="kind")]  # noqa: UP007


class Host(Section):
    """The installed host's identity and kernel command line."""

    hostname: Hostname = "phyllome"
    """The host name (RFC 1123)."""
    keyboard: Keymap = "us"
    """Console keymap (vconsole.conf KEYMAP), e.g. "us", "fr", "de-nodeadkeys"."""
    locale: Locale = "en_US.UTF-8"
    """System locale (locale.conf LANG)."""
    timezone: Timezone = "UTC"
    """Time zone from the tz database, e.g. "Europe/Paris"."""
    kernel_args: list[KernelArg] = Field(default_factory=list)
    """Kernel arguments added after the virtualization defaults chosen for the CPU; one argument per item."""


class User(Section):
    """An administrator account."""

    name: UserName
    """Login name (useradd rules)."""
    full_name: Annotated[str, Field(pattern=r"^[^:]{0,255}$")] = ""
    """The user's full name (GECOS): any text without ':' (the field separator of /etc/passwd)."""
    password: Annotated[SecretStr, AfterValidator(_password)] | None = None
    """The password in clear text; hashed before it reaches the target. Never logged or written back."""
    password_hash: Annotated[SecretStr, AfterValidator(_password_hash)] | None = None
    """A crypt(3) hash such as "$6$..." or "$y$...", instead of password."""
    groups: list[Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]] = Field(
        default_factory=lambda: ["wheel", "libvirt"])
    """Supplementary groups. wheel gives sudo; libvirt gives access to the VMs."""
    ssh_keys: list[SshKey] = Field(default_factory=list)
    """OpenSSH public keys allowed to log in as this user."""

    @model_validator(mode="after")
    def _check(self) -> User:
        _enforce(user_rules, self)
        return self


class PrimaryVm(Section):
    """The primary guest VM to create at first boot (phyllome-firstboot run --unattended)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = "desktop"
    """libvirt domain name."""
    os: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] | None = None
    """Guest OS, as a libosinfo short id (e.g. "win11", "fedora37"); detected from the ISO when omitted. An id
    osinfo-db does not know falls back to the newest of its family (phyllome-firstboot vm os-list)."""
    iso: AbsolutePath | None = None
    """Installation ISO on the host."""
    memory: Size | None = None
    """Guest memory; default: the host's memory minus its reserve, never below osinfo's minimum."""
    vcpus: int | None = Field(default=None, ge=1, le=512)
    """Virtual CPUs; default: the host's CPUs minus one core, never below osinfo's minimum."""
    disk_size: Size | None = None
    """Size of the guest's disk in the encrypted VM store; default: osinfo's recommendation."""
    disk_format: Literal["qcow2", "raw"] = "qcow2"
    """Format of the guest's disk."""
    gpu: Literal["auto", "virtio-gpu-2d", "virtio-gpu-3d", "vfio-pci", "mdev", "sriov-vf"] = "auto"
    """Graphics strategy (firstboot/gpu.py's names); auto takes the first-boot checks' recommendation."""
    vmm: Literal["qemu", "cloud-hypervisor"] = "qemu"
    """Virtual machine monitor: QEMU/KVM, or Cloud Hypervisor through libvirt's ch driver."""
    tpm: bool | None = None
    """Emulated TPM 2.0; default: on where the OS requires it (Windows 11)."""
    start: bool = True
    """Start the VM once it is created."""


class FirstBoot(Section):
    """What the first boot does after the hardware checks."""

    enabled: bool = True
    """Run the first boot on tty1 (false: no first-boot marker is written; the host boots to its login prompt)."""
    unattended: bool = False
    """Create the VM from [firstboot.vm] without screens (phyllome-firstboot run --unattended); false: the
    first-boot screens open on tty1, prefilled from [firstboot.vm], asking only what it leaves out."""
    vm: PrimaryVm | None = None
    """Pre-seed the primary VM; without it the wizard asks."""

    def describe(self) -> str:
        """In words, for the installer's summary."""
        if not self.enabled:
            return "off (no first-boot screens; the host starts to its login prompt)"
        vm = self.vm
        what = f"the VM {vm.name}" + (f" ({vm.os})" if vm and vm.os else "") if vm else "the primary VM"
        if self.unattended:
            return f"unattended: hardware checks, then {what} from [firstboot.vm]"
        return f"on tty1 at the first start: unlock, hardware checks, then {what}"

    def to_toml(self) -> str:
        """This section alone as TOML (it holds no secret): what the installer saves into the target."""
        out: list[str] = []
        _toml_table({"firstboot": self.model_dump(mode="python", exclude_none=True)}, [], out)
        return "# [firstboot] of the answer file, saved by phyllome-install for the first boot.\n" + \
            "\n".join(out).lstrip("\n") + "\n"


class Post(Section):
    """What happens when the install is done."""

    action: Literal["reboot", "poweroff", "none"] = "reboot"
    """reboot, poweroff, or none (stay in the installer)."""


class InstallConfig(Section):
    """A complete install: the answer file's root."""

    version: int
    """Answer file format version. This installer reads version 1."""
    storage: Storage
    """[storage]: the target disk and its layout."""
    payload: Payload
    """[payload]: where the Phyllome OS host comes from."""
    host: Host = Field(default_factory=Host)
    """[host]: hostname, keyboard, locale, timezone, kernel arguments."""
    users: list[User] = Field(min_length=1)
    """[[users]]: at least one administrator who can log in."""
    firstboot: FirstBoot = Field(default_factory=FirstBoot)
    """[firstboot]: the first boot's checks and primary VM."""
    post: Post = Field(default_factory=Post)
    """[post]: reboot, power off, or stay when done."""

    @model_validator(mode="before")
    @classmethod
    def _version_first(cls, data: Any) -> Any:
        if isinstance(data, dict) and "version" in data and data["version"] != SCHEMA_VERSION:
            version = data["version"]
            if isinstance(version, int) and not isinstance(version, bool):
                raise RuleError([(("version",), f"unsupported version {version}: this installer reads "
                                                f"version {SCHEMA_VERSION}")])
        return data

    @model_validator(mode="after")
    def _check(self) -> InstallConfig:
        _enforce(config_rules, self)
        return self

    def secrets(self) -> list[str]:
        """Every secret value in this config, for the redactor."""
        values = [self.storage.encryption.passphrase]
        for user in self.users:
            values += [user.password, user.password_hash]
        return [v.get_secret_value() for v in values if v is not None]


# ------------------------------------------------------------------------------------------- loading


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


def _dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str) and (control_character(part) or not part.replace("_", "").isalnum()):
            part = json.dumps(part)  # a hostile key is shown quoted and escaped, never raw on a terminal
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that holds the keys at ``loc`` (for "did you mean" suggestions)."""
    model: Any = InstallConfig
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if info is None:
            return None
        model = _unwrap(info.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
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


_TAGS = {"local": LocalPayload, "url": UrlPayload, "container": ContainerPayload}


def _describe(error: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """Turn one pydantic error into ``(loc, message)`` pairs a user can act on."""
    loc = tuple(error["loc"])
    kind = error["type"]
    # A tagged union puts the tag in the loc: payload.url.url -> payload.url
    if len(loc) >= 2 and loc[0] == "payload" and loc[1] in _TAGS:
        loc = (loc[0],) + loc[2:]
        model: type[BaseModel] | None = _TAGS[error["loc"][1]]
    else:
        model = _model_at(loc[:-1])
    ctx_error = (error.get("ctx") or {}).get("error")
    if isinstance(ctx_error, RuleError):
        return [(loc + sub, message) for sub, message in ctx_error.problems]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        owners = [tag for tag, cls in _TAGS.items() if key in cls.model_fields]
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
        return [(loc + ("kind",), f"kind must be one of: {', '.join(_TAGS)}")]
    if kind == "union_tag_not_found":
        return [(loc, "missing required key 'kind' (local, url or container)")]
    if kind == "literal_error":
        return [(loc, "must be one of: " + error["ctx"]["expected"].replace("'", '"'))]
    if kind == "string_pattern_mismatch":
        return [(loc, "invalid value: " + _PATTERN_HELP.get(loc[-1] if not isinstance(loc[-1], int) else loc[-2],
                                                            "does not have the expected form"))]
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    elif kind in ("string_type", "int_type", "bool_type", "list_type", "model_type", "model_attributes_type",
                  "int_parsing", "bool_parsing", "dict_type"):
        message = f"wrong type: {message[0].lower()}{message[1:]}"
    return [(loc, message)]


_PATTERN_HELP = {
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


def _syntax_problem(path: str, exc: tomllib.TOMLDecodeError) -> Problem:
    text = str(exc)
    match = re.search(r"\(at line (\d+), column (\d+)\)", text)
    line, column = (int(match.group(1)), int(match.group(2))) if match else (1, 1)
    message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", text)
    return Problem(path, line, column, "", f"TOML syntax error: {message}")


#: Deeper nesting of arrays and inline tables than any answer file needs; deeper would exhaust the parser's stack.
MAX_NESTING = 32


def _too_deep(text: str) -> tuple[int, int] | None:
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


def parse(text: str, path: str = "<answers>", *, unattended: bool = True,
          redactor: Redactor | None = REDACTOR) -> LoadResult:
    """Validate an answer file's text. Never raises for bad input: problems come back in the result."""
    text = text.removeprefix("\ufeff")  # a byte-order mark, as Notepad writes it
    deep = _too_deep(text)
    if deep is not None:
        return LoadResult(None, [Problem(path, deep[0], deep[1], "",
                                         f"arrays or tables nested deeper than {MAX_NESTING} levels")])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return LoadResult(None, [_syntax_problem(path, exc)])
    except RecursionError:  # belt and braces: _too_deep should have caught it
        return LoadResult(None, [Problem(path, 1, 1, "", "the file nests too deeply to be read")])
    return validate_data(data, path, unattended=unattended, redactor=redactor, where=positions(text))


def validate_data(data: dict[str, Any], path: str = "<interactive>", *, unattended: bool = False,
                  redactor: Redactor | None = REDACTOR, where: dict | None = None) -> LoadResult:
    """Validate answer-file data (from TOML or from the TUI's forms); every problem at once, never raises."""
    where = where or {}
    try:
        config = InstallConfig.model_validate(data, context={"unattended": unattended})
    except ValidationError as exc:
        described = [pair for error in exc.errors() for pair in _describe(error)]
        described += raw_rules(data, unattended)
        problems: list[Problem] = []
        for loc, message in dict.fromkeys(described):
            (line, column), _ = locate(where, loc)
            problems.append(Problem(path, line, column, _dotted(loc), message))
        problems.sort(key=lambda p: (p.line, p.column))
        _register_raw_secrets(data, redactor)
        return LoadResult(None, problems)
    if redactor is not None:
        for secret in config.secrets():
            redactor.add(secret)
    return LoadResult(config, [], _warnings(config, path, where))


def _register_raw_secrets(data: dict[str, Any], redactor: Redactor | None) -> None:
    """Even an invalid file's secrets must not reach a log."""
    if redactor is None:
        return
    encryption = (data.get("storage") or {}).get("encryption") if isinstance(data.get("storage"), dict) else None
    if isinstance(encryption, dict) and isinstance(encryption.get("passphrase"), str):
        redactor.add(encryption["passphrase"])
    for user in data.get("users") or []:
        if isinstance(user, dict):
            for key in ("password", "password_hash"):
                if isinstance(user.get(key), str):
                    redactor.add(user[key])


def _warnings(config: InstallConfig, path: str, where: dict) -> list[Problem]:
    def warn(loc: tuple[str | int, ...], message: str) -> Problem:
        (line, column), _ = locate(where, loc)
        return Problem(path, line, column, _dotted(loc), message)

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
    return _config_or_raise(load(path, **kwargs))


def config_from_bytes(raw: bytes, name: str, **kwargs: Any) -> InstallConfig:
    """Like :func:`parse_bytes`, but raises :class:`AnswerFileError` with every problem."""
    return _config_or_raise(parse_bytes(raw, name, **kwargs))


def _config_or_raise(result: LoadResult) -> InstallConfig:
    if not result.ok:
        raise AnswerFileError(result.problems)
    assert result.config is not None
    return result.config


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


def _toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # TOML basic strings share JSON's escapes for everything json.dumps emits.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_scalar(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_table(data: dict[str, Any], path: list[str], out: list[str], array: bool = False) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and not _is_table_list(v)}
    if path:
        out.append(("\n[[{}]]" if array else "\n[{}]").format(".".join(path)))
    for key, value in scalars.items():
        if isinstance(value, SecretStr):
            out.append(f"# {key} = \"...\"  (removed: secrets are never written)")
        else:
            out.append(f"{key} = {_toml_scalar(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            _toml_table(value, path + [key], out)
        elif _is_table_list(value):
            for item in value:
                _toml_table(item, path + [key], out, array=True)


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def dumps(config: InstallConfig) -> str:
    """The config as TOML, every secret replaced by a comment. Keys left at their defaults are kept explicit."""
    data = config.model_dump(mode="python", exclude_none=True)
    data = {"version": data.pop("version"), **data}
    out: list[str] = []
    _toml_table(data, [], out)
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
