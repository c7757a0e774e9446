"""Choosing the target disk of an install: the answer file's storage section resolved against a machine profile
(a live probe or a saved JSON), and checked against a saved profile offline."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from storage.probe import Disk, MachineProfile

from .answers import InstallConfig, Problem, Storage, wipe_names_disk
from .answers.positions import locate, positions
from .core.errors import UserError
from .core.files import BoundedReadError, read_bounded


def load_profile(path: Path) -> MachineProfile:
    try:
        return MachineProfile.model_validate_json(read_bounded(path, 4 << 20))
    except BoundedReadError as exc:
        raise UserError(f"cannot read the machine profile: {exc}") from None
    except (ValidationError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not a machine profile (from `phyllome-install probe --json`): "
                        f"{str(exc).splitlines()[0]}") from None


class TargetError(UserError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def resolve_target(storage: Storage, profile: MachineProfile, *, unattended: bool = True) -> Disk:
    """The disk to erase. Raises :class:`TargetError` naming the answer-file key at fault."""
    if storage.disk is not None:
        disk = profile.disk(storage.disk)
        if disk is None:
            known = ", ".join(d.path for d in profile.disks) or "none"
            raise TargetError("storage.disk", f"no disk {storage.disk} on this machine (disks: {known})")
        refuse(disk)
    else:
        assert storage.match is not None
        rules = storage.match
        matching = [d for d in profile.disks
                    if rules.accepts(model=d.model, serial=d.serial, transport=d.transport, size=d.size)]
        usable = [d for d in matching if d.usable]
        if not usable:
            why = "; ".join(f"{d.path}: {', '.join(d.flags.values())}" for d in matching)
            raise TargetError("storage.match", "no usable disk matches the rules" + (f" ({why})" if why else ""))
        if rules.pick == "only" and len(usable) > 1:
            names = ", ".join(d.path for d in usable)
            raise TargetError("storage.match.pick", f"{len(usable)} disks match ({names}); pick = \"only\" needs "
                                                    "exactly one: tighten the rules or pick largest/smallest")
        disk = sorted(usable, key=lambda d: d.size)[-1 if rules.pick == "largest" else 0]
    if unattended:
        wipe = storage.wipe or ""
        matched = storage.match is not None and wipe == "matched"
        if not matched and not wipe_names_disk(wipe, disk.path, serial=disk.serial or None, by_id=disk.by_id):
            raise TargetError("storage.wipe", f"wipe = {wipe!r} does not name the chosen disk {disk.describe()}")
        twins = [d.path for d in profile.disks if d.path != disk.path and d.serial and d.serial == wipe.strip()]
        if twins and not matched:
            raise TargetError("storage.wipe", f"wipe = {wipe!r} is the serial of {disk.path} and of "
                                              f"{', '.join(twins)} too: name the disk by its by-id name or its path")
    return disk


def refuse(disk: Disk) -> None:
    """Raise when the disk must not be a target, naming every reason."""
    if disk.flags:
        raise TargetError("storage.disk", f"{disk.path} cannot be the target: " + "; ".join(disk.flags.values()))


def check_against_profile(config: InstallConfig, answers_path: Path, profile_path: Path) -> list[Problem]:
    """Problems of the storage section against a saved machine profile (empty when the target is fine)."""
    profile = load_profile(profile_path)
    try:
        resolve_target(config.storage, profile)
    except TargetError as exc:
        try:
            where = positions(read_bounded(answers_path).decode("utf-8-sig", errors="replace"))
        except BoundedReadError:
            where = {}
        loc = tuple(exc.key.split("."))
        (line, column), _ = locate(where, loc)
        return [Problem(str(answers_path), line, column, exc.key, f"{exc.message} (machine profile {profile_path})")]
    return []
