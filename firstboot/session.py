"""One first boot, shared by the screens and ``run --unattended``: checks, GPUs, ISOs, the VM, kernel arguments,
the result file and the marker. No UI here; commands, roots and the libvirt URI are injected.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from phyllome_installer.core.errors import UserError
from phyllome_installer.core.facts import VM_STORE
from phyllome_installer.core.files import write_regular
from phyllome_installer.core.runner import Runner

from . import state
from .checks import Check, Machine, run_checks
from .gpu import Gpu, analyse

log = logging.getLogger("phyllome.firstboot.session")

ISO_DIR = Path("var/lib/libvirt/isos")
"""Where Phyllome's kickstarts put installation ISOs."""
MEDIA_DIRS = (Path("run/media"), Path("media"), Path("mnt"))
"""Where removable media are mounted (udisks: /run/media/USER/LABEL)."""
STAGED = Path("run/ostree/staged-deployment")


def karg_fix(check: Check, cpu_vendor: str) -> list[str]:
    """The kernel arguments that fix ``check``, when the host can apply them itself (else [])."""
    if check.status not in ("WARN", "FAIL"):
        return []
    if check.id == "iommu-kernel" and "firmware" not in check.remedy:
        wanted = {"intel": "intel_iommu=on", "amd": "amd_iommu=on"}.get(cpu_vendor, "iommu=on")
        return [wanted, "iommu=pt"]
    if check.id == "ignore-msrs":
        return ["kvm.ignore_msrs=1"]
    return []


def has_rpm_ostree(root: Path = Path("/")) -> bool:
    return bool(shutil.which("rpm-ostree", path=os.pathsep.join(str(Path(root) / d) for d in ("usr/bin", "usr/sbin"))))


def karg_command(args: list[str], *, rpm_ostree: bool, booted_commit: str | None = None) -> list[str]:
    """A new deployment with the arguments appended (a bad one rolls back by booting the previous entry)."""
    if rpm_ostree:
        return ["rpm-ostree", "kargs", *(f"--append={a}" for a in args)]
    if not booted_commit:
        raise UserError("cannot tell the booted ostree deployment: the kernel arguments were not changed")
    return ["ostree", "admin", "deploy", "--retain", "--karg-proc-cmdline",
            *(f"--karg-append={a}" for a in args), booted_commit]


def booted_commit(runner: Runner) -> str | None:
    """The checksum of the booted deployment (``* stateroot CHECKSUM.SERIAL`` in ``ostree admin status``)."""
    result = runner.run(["ostree", "admin", "status"], check=False)
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "*":
            return parts[2].rsplit(".", 1)[0]
    return None


def find_isos(root: Path = Path("/")) -> list[Path]:
    """Installation ISOs: the ISO directory first, then removable media (two levels deep), newest first each."""
    found: list[Path] = []
    for base, depth in ((ISO_DIR, 1), *((d, 3) for d in MEDIA_DIRS)):
        top = Path(root) / base
        if not top.is_dir():
            continue
        here = [p for p in _walk(top, depth) if p.suffix.lower() == ".iso" and p.is_file()]
        found += sorted(here, key=lambda p: (-p.stat().st_mtime, p.name))
    return found


def _walk(top: Path, depth: int):
    try:
        entries = list(os.scandir(top))
    except OSError:
        return
    for entry in entries:
        if entry.is_file(follow_symlinks=True):
            yield Path(entry.path)
        elif depth > 1 and entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), depth - 1)


@dataclass
class Step:
    name: str
    ok: bool
    detail: str


@dataclass
class Result:
    """What a first boot did; saved to /var/lib/phyllome/firstboot.json."""

    mode: str
    steps: list[Step] = field(default_factory=list)
    vm: dict | None = None
    error: str | None = None
    failed_step: str | None = None
    log: str | None = None
    started: str = field(default_factory=lambda: _now())

    @property
    def ok(self) -> bool:
        return self.error is None

    def add(self, name: str, detail: str, ok: bool = True) -> None:
        self.steps.append(Step(name, ok, detail))
        log.info("first boot: %s: %s%s", name, "" if ok else "FAILED: ", detail)

    def fail(self, name: str, error: str) -> None:
        self.failed_step, self.error = name, error
        self.add(name, error, ok=False)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "mode": self.mode, "started": self.started, "finished": _now(),
                "steps": [vars(s) for s in self.steps], "vm": self.vm, "failed_step": self.failed_step,
                "error": self.error, "log": self.log}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def save_result(result: Result, root: Path = Path("/")) -> Path:
    text = json.dumps(result.to_dict(), indent=2) + "\n"
    return write_regular(Path(root) / state.RESULT, text.encode(), 0o644)  # whole, never through a link


def finish(result: Result, root: Path = Path("/")) -> bool:
    """Save the result; remove the marker only when everything succeeded. True when the marker was removed."""
    save_result(result, root)
    marker = Path(root) / state.MARKER
    if result.ok and marker.exists():
        marker.unlink()
        return True
    return False


class Session:
    """The machine a first boot runs on: its root (files), runner (commands) and libvirt URI."""

    def __init__(self, runner: Runner, *, root: Path = Path("/"), uri: str = "qemu:///system",
                 store: Path = Path(VM_STORE)) -> None:
        self.runner = runner
        self.root = Path(root)
        self.uri = uri
        self.store = Path(store)
        self.machine = self.read_machine()
        self._catalogue = None
        self.pending_reboot = (self.root / STAGED).exists()
        self.applied_kargs: list[str] = []

    def read_machine(self) -> Machine:
        return Machine(self.root)

    @property
    def catalogue(self):
        if self._catalogue is None:
            from .osinfo import Catalogue

            self._catalogue = Catalogue()
        return self._catalogue

    def checks(self) -> list[Check]:
        self.machine = self.read_machine()  # a re-check reads everything again
        checks = run_checks(self.machine)
        try:
            state.save_profile({"checks": [c.to_dict() for c in checks]}, self.root / state.PROFILE)
        except OSError as exc:
            log.warning("cannot save %s: %s", self.root / state.PROFILE, exc.strerror)
        return checks

    def gpus(self, family: str) -> list[Gpu]:
        return analyse(self.machine, "windows" if family == "windows" else "linux")

    def fixes(self, checks: list[Check]) -> dict[str, list[str]]:
        vendor = self.machine.cpu_vendor()
        return {c.id: args for c in checks if (args := karg_fix(c, vendor))}

    def apply_kargs(self, args: list[str]) -> str:
        rpm_ostree = has_rpm_ostree(self.root)
        argv = karg_command(args, rpm_ostree=rpm_ostree, booted_commit=None if rpm_ostree else
                            booted_commit(self.runner))
        self.runner.run(argv)
        self.applied_kargs += args
        self.pending_reboot = True
        return " ".join(args)

    def isos(self) -> list[Path]:
        return find_isos(self.root)

    def os_entries(self) -> list[dict]:
        return self.catalogue.entries()

    def os_choices(self) -> list[tuple[str, str]]:
        """(shown, short id) for the OS pick list: "Windows 11 (win11)", newest releases of each distro."""
        return self.catalogue.pick_list()

    def detect(self, iso: Path, cancelled=lambda: False) -> str:
        """The OS on the ISO, detected in a child process with a deadline, killed when ``cancelled()``."""
        from .osinfo import detect_in_child

        return detect_in_child(iso, cancelled=cancelled)

    def plan(self, request, os_id: str | None, *, detected_from: str | None = None):
        """The VM planned (``request.gpu_address``: the GPU chosen, None: any); ``detected_from``: the ISO
        ``os_id`` was detected from (the review says so instead of "user")."""
        from .primary import build, host_facts

        return build(request, os_id, catalogue=self.catalogue, host=host_facts(self.uri, self.root),
                     machine=self.machine, detected_from=detected_from)

    def create(self, planned, *, dry_run: bool, start: bool, on_step=None):
        from .primary import create

        return create(planned, self.uri, self.runner, dry_run=dry_run, start=start, root=self.root, on_step=on_step)
