"""Value types of the answer file: sizes, host and user names, time zones, kernel arguments, paths, keys,
and the rule that no string holds a control character."""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
import zoneinfo
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr

from ..core import cmdline
from ..core.facts import MIN_PASSWORD
from ..core.sizes import GiB
from .base import Problems

_SIZE = re.compile(r"\s*(\d{1,20}(?:\.\d{1,9})?)\s*([KMGTP]i?B|B)\s*", re.IGNORECASE | re.ASCII)
#: No disk, memory or file the installer deals with is larger (8 EiB): anything above is a typo or an attack.
MAX_SIZE = 1 << 63
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50}


def shown(text: str, limit: int = 40) -> str:
    """A user's value quoted for a message, cut short when long."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def parse_size(text: str) -> int:
    """Bytes in a size such as ``600MiB``, ``1.5TB`` or ``512B``."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"{shown(text)} is not a size: write a number and a unit, such as \"600MiB\" or "
                         "\"1.5TB\"")
    whole, _, fraction = match.group(1).partition(".")
    unit = _UNITS[match.group(2).lower()]
    size = int(whole) * unit + (int(fraction) * unit) // 10 ** len(fraction) if fraction else int(whole) * unit
    if size > MAX_SIZE:
        raise ValueError(f"{shown(text)} is too large (more than 8 EiB)")
    return size


def size_text(n: int) -> str:
    """A size as the answer file writes it (what :func:`parse_size` reads back): "8GiB", else whole MiB."""
    return f"{n // GiB}GiB" if n % GiB == 0 else f"{n >> 20}MiB"


def size_value(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("a size is a string with a unit, such as \"200GiB\" (a bare number is ambiguous)")
    if parse_size(value) <= 0:
        raise ValueError("a size must be greater than zero")
    return value.strip()


Size = Annotated[str, BeforeValidator(size_value)]


def at_least(minimum: str, what: str) -> AfterValidator:
    """A size no smaller than `minimum`: a value that validates must work where it is used."""
    floor = parse_size(minimum)

    def check(value: str) -> str:
        if parse_size(value) < floor:
            raise ValueError(f"{shown(value)} is too small for {what}: at least {minimum}")
        return value

    return AfterValidator(check)

_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE | re.ASCII)


def hostname(value: str) -> str:
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
def timezones() -> frozenset[str]:
    """Zones of the tz database; not the aliases of the running system ("localtime" links back to /etc)."""
    return frozenset(zoneinfo.available_timezones()) - {"localtime", "posixrules", "Factory"}


def timezone(value: str) -> str:
    if value in ("UTC", "Etc/UTC") or value in timezones():
        return value
    close = difflib.get_close_matches(value, timezones(), n=1, cutoff=0.7)
    hint = f"; did you mean {close[0]!r}?" if close else " (use a name such as \"Europe/Paris\" or \"UTC\")"
    raise ValueError(f"unknown timezone {value!r}{hint}")


_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
#: System users and groups of Fedora's `setup` package and of the services a Phyllome host runs: an admin user of
#: one of these names would collide with it (useradd makes a group of the user's name). The check task also
#: compares the names with the payload's own passwd and group files before anything is written.
RESERVED_USERS = frozenset(
    "root bin daemon sys adm tty disk lp mem kmem wheel cdrom sync shutdown halt mail news uucp man operator games "
    "gopher ftp lock audio video dialout floppy tape users nobody utmp utempter input kvm render sgx ssh_keys "
    "systemd-journal systemd-network systemd-resolve systemd-timesync systemd-coredump systemd-oom dbus polkitd "
    "sshd qemu libvirt libvirtdbus tss swtpm chrony dnsmasq rpc rpcuser avahi unbound clevis printadmin clock "
    "pipewire rtkit geoclue gdm colord saslauth setroubleshoot flatpak".split()
)


def username(value: str) -> str:
    if not _USER.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid user name: 1 to 32 characters, lowercase letters, digits, '_' or '-', "
            "starting with a letter or '_'"
        )
    if value in RESERVED_USERS:
        raise ValueError(f"{value!r} is a system account; choose another name for the admin user")
    return value


def kernel_arg(value: str) -> str:
    if not value:
        raise ValueError("a kernel argument cannot be empty")
    if value.count('"') % 2:
        raise ValueError(f"{value!r} has an unbalanced double quote")
    if not value.isascii():
        raise ValueError(f"{value!r} has characters beyond ASCII: the kernel splits its command line on bytes, so "
                         "a non-ASCII space or letter would not reach it as written")
    if not cmdline.is_one_word(value):
        raise ValueError(f"{value!r} is more than one kernel argument: give each as its own list item (spaces "
                         "belong inside double quotes, as in dyndbg=\"file drivers/usb/* +p\")")
    name = value.strip('"').split("=", 1)[0]
    if name in ("root", "rootfstype", "ostree"):
        raise ValueError(f"{name}= is set by the installer from the partition and the deployment it creates")
    if name in ("ro", "rw"):
        raise ValueError(f"{name}: the installer mounts the root read-write at boot (ostree keeps /usr read-only); "
                         "a later ro or rw would override it")
    return value


def absolute(value: str) -> str:
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


def ssh_key(value: str) -> str:
    if not _SSH_KEY.fullmatch(value.strip(" ")):
        raise ValueError("not an OpenSSH public key (expected \"ssh-ed25519 AAAA... comment\")")
    return value.strip(" ")


def password_rule(value: SecretStr) -> SecretStr:
    if not value.get_secret_value():
        raise ValueError("the password is empty")
    if len(value.get_secret_value()) < MIN_PASSWORD:
        raise ValueError(f"the password needs at least {MIN_PASSWORD} characters")
    return value


def password_hash_rule(value: SecretStr) -> SecretStr:
    if not _HASH.fullmatch(value.get_secret_value()):
        raise ValueError("not a crypt(3) hash (expected \"$6$...\" or \"$y$...\")")
    return value


def glob_rule(value: str) -> str:
    if not value:
        raise ValueError("an empty pattern matches nothing")
    return value


#: Directories of /var that the system itself fills (the install writes the log and the users' homes; the
#: others hold state of the host): fscrypt encrypts only an empty directory, and a locked one would stop them.
SYSTEM_STATE = ("/var/log", "/var/home", "/var/roothome", "/var/tmp", "/var/cache", "/var/spool", "/var/lib",
                "/var/opt", "/var/srv", "/var/mnt", "/var/usrlocal", "/var/lib/phyllome", "/var/lib/systemd")


def state_dir(value: str) -> str:
    """A directory below /var to encrypt, normalised ("/var/x/" and "/var//x" are "/var/x")."""
    path = PurePosixPath(value)
    if path.parts[:2] != ("/", "var") or len(path.parts) < 3:
        raise ValueError(f"{value!r} is not below /var: on an ostree host only /var is writable and kept across "
                         "upgrades (e.g. \"/var/lib/libvirt/images\")")
    normal = str(path)
    for system in SYSTEM_STATE:
        if normal == system or (system in ("/var/log", "/var/home", "/var/roothome", "/var/tmp")
                                and normal.startswith(system + "/")):
            raise ValueError(f"{value!r} is the host's own state ({system}): the VM store to encrypt is "
                             "\"/var/lib/libvirt/images\"")
    return normal


Hostname = Annotated[str, AfterValidator(hostname)]
Timezone = Annotated[str, AfterValidator(timezone)]
UserName = Annotated[str, AfterValidator(username)]
KernelArg = Annotated[str, AfterValidator(kernel_arg)]
AbsolutePath = Annotated[str, AfterValidator(absolute)]
StateDir = Annotated[str, AfterValidator(absolute), AfterValidator(state_dir)]
SshKey = Annotated[str, AfterValidator(ssh_key)]
Glob = Annotated[str, AfterValidator(glob_rule)]
KEYMAP_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""A console keymap's name as loadkeys and vconsole.conf take it (never an option: no leading dash)."""
Keymap = Annotated[str, Field(pattern=KEYMAP_PATTERN)]
Locale = Annotated[str, Field(pattern=r"^(C|POSIX|[a-z]{2,3}(_[A-Z]{2})?)(\.[A-Za-z0-9-]+)?(@[A-Za-z0-9]+)?$")]


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
