"""Cross-field rules. Each takes plain values (a model's or the raw TOML's) and tolerates wrong types, which
field validation reports on its own; so the rules run on raw data too when a section has field errors. And the
wipe consent: whether it names the target disk."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import PurePosixPath

from ..core.facts import COMMAND_WORDS
from .base import DEFAULT_PROTECT, MIN_PASSPHRASE, Problems, str_value
from .values import absolute, parse_size, state_dir

# Each takes plain values (a model's or the raw TOML's) and tolerates wrong types, which field validation
# reports on its own; so the rules can run on raw data too when a section has field errors.


def match_rules(d: dict) -> Problems:
    out: Problems = []
    if not any(d.get(k) is not None for k in ("model", "serial", "transport", "min_size", "max_size")):
        out.append(((), "give at least one rule: model, serial, transport, min_size or max_size"))
    low, high = str_value(d, "min_size"), str_value(d, "max_size")
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
    if isinstance(protect, list) and all(isinstance(p, str) for p in protect):
        normal = [str(PurePosixPath(p)) for p in protect]
        for index, path in enumerate(normal):
            if path not in DEFAULT_PROTECT and _valid_state_dir(protect[index]):
                out.append((("protect", index), f"only {', '.join(DEFAULT_PROTECT)} can be protected in this "
                                                "version: it is the directory the unlock at every boot opens and "
                                                "the first boot puts the VM disks in; another one would stay "
                                                "locked and unused"))
            elif path in normal[:index]:
                out.append((("protect", index), "this directory is listed twice"))
            elif any(path.startswith(other + "/") or other.startswith(path + "/") for other in normal[:index]):
                out.append((("protect", index), "this directory is inside another protected directory, or "
                                                "holds one: each directory is encrypted on its own"))
    return out


def _valid_state_dir(value: str) -> bool:
    """Whether the directory passes the key's own checks (whose message is then the only one)."""
    try:
        state_dir(absolute(value))
    except ValueError:
        return False
    return True


def vm_rules(d: dict) -> Problems:
    """What libvirt's Cloud Hypervisor driver cannot give a VM, refused offline (firstboot/vm_ch.py refuses the
    same at first boot, when it would be too late to fix the file)."""
    if d.get("vmm") != "cloud-hypervisor":
        return []
    out: Problems = []
    if d.get("gpu", "auto") != "vfio-pci":
        out.append((("gpu",), "vmm = \"cloud-hypervisor\" has no emulated display: it needs gpu = \"vfio-pci\""))
    if d.get("disk_format", "qcow2") != "raw":
        out.append((("disk_format",), "vmm = \"cloud-hypervisor\" takes raw disks: set disk_format = \"raw\""))
    if d.get("tpm") is True:
        out.append((("tpm",), "vmm = \"cloud-hypervisor\" cannot attach a TPM: use vmm = \"qemu\""))
    if isinstance(d.get("os"), str) and d["os"].startswith("win"):
        out.append((("os",), "Windows needs UEFI Secure Boot variables and a TPM 2.0, which vmm = "
                              "\"cloud-hypervisor\" cannot give it: use vmm = \"qemu\""))
    return out


def storage_rules(d: dict, unattended: bool) -> Problems:
    out: Problems = []
    disk, wipe = str_value(d, "disk"), str_value(d, "wipe")
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
        name = str_value(d, "name") or "this user"
        out.append(((), f"user {name!r} cannot log in: set password, password_hash or ssh_keys"))
    return out


SECRET_KEYS = ("passphrase", "password")


def _strings(node, loc: tuple = ()) -> list[tuple[tuple, str]]:
    """Every string value with its location, secrets and password hashes left out."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    out: list[tuple[tuple, str]] = []
    for key, value in items:
        if key in (*SECRET_KEYS, "password_hash"):
            continue
        if isinstance(value, str):
            out.append((loc + (key,), value))
        elif isinstance(value, dict | list):
            out += _strings(value, loc + (key,))
    return out


def secret_rules(d: dict) -> Problems:
    """A passphrase or password that is part of another value of the file (a user name, a full name, the
    hostname, a path, the ref) would show on command lines and in logs, where no mask can hide it without
    showing where it was: such a file is refused here, at the secret's line, never at install time."""
    secrets: list[tuple[tuple, str, str]] = []
    encryption = d.get("storage", {}).get("encryption") if isinstance(d.get("storage"), dict) else None
    if isinstance(encryption, dict) and isinstance(encryption.get("passphrase"), str):
        secrets.append((("storage", "encryption", "passphrase"), encryption["passphrase"], "passphrase"))
    users = d.get("users")
    for index, user in enumerate(users if isinstance(users, list) else []):
        if isinstance(user, dict) and isinstance(user.get("password"), str):
            secrets.append((("users", index, "password"), user["password"], "password"))
    out: Problems = []
    values = _strings(d)
    for loc, secret, what in secrets:
        if not secret:
            continue
        if secret in COMMAND_WORDS:
            out.append((loc, f"the {what} is a word the install itself passes on its command lines (the OS "
                             f"name, a partition name): choose another {what}"))
            continue
        where = next((other for other, value in values if secret in value), None)
        if where is not None:
            shown = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in where).replace(".[", "[")
            out.append((loc, f"the {what} is part of {shown}, which shows on command lines and in logs: "
                             f"choose a {what} that is not part of another value"))
    return out


def config_rules(d: dict) -> Problems:
    out: Problems = secret_rules(d)
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


_KERNEL_NAME = re.compile(r"^(sd[a-z]+|hd[a-z]+|vd[a-z]+|xvd[a-z]+|nvme\d+n\d+|mmcblk\d+|loop\d+)$")


def wipe_conflicts(wipe: str, disk: str) -> bool:
    """Offline: whether the consent provably names another disk than the target.

    A serial cannot be checked without the machine (that happens before anything is written, against the
    probed disk, and only a whole serial counts); two names of the same kind (kernel names, or by-id names) can.
    """
    wipe = wipe.strip()
    if not wipe:
        return True
    if wipe_names_disk(wipe, disk):
        return False
    kind = name_kind
    if kind(wipe) == kind(disk) != "other":
        return True
    if kind(disk) == "by-id" and kind(wipe) == "other" and not os.path.basename(disk).startswith("wwn-"):
        return wipe not in _serials_of_by_id(os.path.basename(disk))
    return False


def _serials_of_by_id(name: str) -> set[str]:
    """The serial a by-id name ends in (``ata-MODEL_SERIAL``, ``nvme-MODEL_SERIAL`` or ``..._SERIAL_NSID``,
    ``usb-..._SERIAL-0:0``, ``virtio-SERIAL``): the last whole field before an NVMe namespace or a USB LUN.
    Never a part of a field. Offline only: consent itself is the probed disk's whole serial."""
    bus, _, rest = name.partition("-")
    if bus == "virtio":
        return {rest}
    if bus == "usb":
        rest = re.sub(r"-\d+:\d+$", "", rest)
    if bus == "nvme":
        rest = re.sub(r"_\d{1,4}$", "", rest)  # the namespace id (udev's nvme-MODEL_SERIAL_NSID)
    return {rest.rpartition("_")[2]} if "_" in rest else set()


def name_kind(name: str) -> str:
    if "/by-id/" in name:
        return "by-id"
    if "/by-path/" in name:
        return "by-path"
    if _KERNEL_NAME.match(os.path.basename(name)) and (name.startswith("/dev/") or "/" not in name):
        return "kernel"
    return "other"


def wipe_names_disk(wipe: str, disk: str, *, serial: str | None = None, by_id: Iterable[str] = ()) -> bool:
    """Whether the consent string names the disk, whole: its path, its kernel name, a whole by-id name, or its
    whole serial (known only on the machine). Never a suffix or a fragment: ``1`` is not consent for an NVMe
    disk whose by-id name ends in ``_1`` (its namespace)."""
    wipe = wipe.strip()
    if not wipe:
        return False
    names = {disk, os.path.basename(disk), *by_id, *(os.path.basename(b) for b in by_id)}
    return wipe in names or bool(serial and wipe == serial)
