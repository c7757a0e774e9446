"""What the install's tasks share while an install runs (:class:`Context`): built by plan.py, passed to every
task of tasks.py. Its own module, so that the plan (which lists the tasks) and the tasks (which take the context)
import it without importing each other."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from storage import layout as layouts
from storage.apply import Applied, TargetMounts
from storage.fscrypt import Protected
from storage.probe import Disk

from . import deploy
from .answers import InstallConfig
from .core.interrupt import Stop
from .core.progress import TaskProgress
from .core.runner import Runner
from .core.sinks import NullSink, Sink
from .core.targetfs import TargetFiles
from .sandbox import kernel_can_mount

log = logging.getLogger("phyllome.plan")  # the plan's logger, as before the context had a module of its own


@dataclass
class Context:
    """What the tasks share while an install runs. Built by :func:`build`; filled in as tasks run."""

    config: InstallConfig
    disk: Disk
    layout: layouts.Layout
    runner: Runner
    sysroot: Path
    cpu_vendor: str
    log_path: Path | None = None
    sink: Sink = field(default_factory=NullSink)
    sandbox: bool = False
    include_loop: bool = False
    fat_driver: str | None = "kernel"
    """How the ESP is mounted: "kernel", "fusefat", or None (not mountable here)."""
    applied: Applied | None = None
    mounts: TargetMounts | None = None
    deployment: Path | None = None
    protected: dict[str, Protected] = field(default_factory=dict)
    """Directory of the installed system (e.g. /var/lib/libvirt/images) -> how it is protected."""
    passphrase: str | None = field(default=None, repr=False)
    consent: str = ""
    """The identity of the disk the user agreed to erase (Disk.identity); the check task refuses any other."""
    stop: Stop = field(default_factory=Stop)
    """Set by a signal or a front end: the engine stops before the next task (the runner, at the next command)."""
    files: TargetFiles = field(default_factory=TargetFiles)
    """Writes into the target; in a dry run, shows them instead."""
    can_mount: Callable[[str], bool] = kernel_can_mount
    """Whether the running kernel mounts a filesystem type (injected so that plans do not depend on this host)."""
    query: Runner | None = None
    """Runs the read-only questions the check task asks (ostree rev-parse, ls, cat): the install's own runner,
    and in a dry run still the real one, so that a dry run refuses what the install would refuse."""

    @property
    def asks(self) -> Runner:
        return self.query or self.runner

    def progress(self, task: str, message: str, fraction: float | None = None) -> None:
        log.debug("%s", message)  # the progress event reaches the console; the log file keeps this line
        self.sink.emit(TaskProgress(task, fraction, message))

    @property
    def root_uuid(self) -> str:
        return self.applied.uuids["root"] if self.applied else "<root-uuid>"

    @property
    def deployment_dir(self) -> Path:
        return self.deployment or self.sysroot / "ostree/deploy/phyllome/deploy/<commit>.0"

    def kargs(self) -> list[str]:
        return deploy.kernel_args(self.root_uuid, self.cpu_vendor, self.config.host.kernel_args)

    def store(self, directory: str) -> Path:
        """Where a protected directory of the installed system lives on the target (/var is the stateroot's)."""
        rel = PurePosixPath(directory).relative_to("/var")  # the schema keeps protect below /var
        return deploy.stateroot_var(self.sysroot) / rel
