"""Shared by the first-boot TUI tests: an app on a copy of a saved machine tree, and a scripted VM-store unlocker."""

from __future__ import annotations

import shutil
from pathlib import Path

from firstboot.session import Session
from phyllome_installer.answers import FirstBoot
from phyllome_installer.core.runner import RecordingRunner
from screens.firstboot.app import create_firstboot_app
from tests.unlockers import ScriptedUnlocker

MACHINES = Path(__file__).resolve().parents[1] / "data" / "machines"


def machine_copy(tmp_path: Path, name: str = "iommu-firmware-not-kernel") -> Path:
    root = tmp_path / "machine"
    shutil.copytree(MACHINES / name, root, symlinks=True)
    (root / "etc/phyllome").mkdir(parents=True, exist_ok=True)
    (root / "etc/phyllome/firstboot").write_text("installed-by=test\n")
    return root


def make_app(tmp_path: Path, *, uri: str = "test:///default", firstboot: dict | None = None, unlocker=None,
             runner=None, machine: str = "iommu-firmware-not-kernel", console: bool | None = None):
    root = machine_copy(tmp_path, machine)
    store = tmp_path / "images"
    store.mkdir(exist_ok=True)
    session = Session(runner or RecordingRunner(), root=root, uri=uri, store=store)
    return create_firstboot_app(session, FirstBoot.model_validate(firstboot or {}), log_path=tmp_path / "fb.log",
                                unlocker=unlocker or ScriptedUnlocker(state="not-encrypted"), console=console)
