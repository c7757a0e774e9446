"""Progress events, and the one line of text each is shown as.

Events are small frozen dataclasses. The engine emits them; a sink (:mod:`.sinks`) delivers them: plain text lines
for a console, JSON lines for machines (``--json-progress``), or a queue that the TUI drains on its own thread.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import ClassVar


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    timestamp: float = field(default_factory=_now, kw_only=True)

    def to_dict(self) -> dict:
        return {"event": self.kind, **asdict(self)}


@dataclass(frozen=True)
class TaskStarted(Event):
    kind: ClassVar[str] = "task-started"
    task: str
    title: str
    index: int = 0
    total: int = 0


@dataclass(frozen=True)
class TaskProgress(Event):
    """Progress inside a task. ``fraction`` is 0..1, or None when the amount of work is unknown."""

    kind: ClassVar[str] = "task-progress"
    task: str
    fraction: float | None = None
    message: str = ""


@dataclass(frozen=True)
class TaskFinished(Event):
    kind: ClassVar[str] = "task-finished"
    task: str
    seconds: float = 0.0


@dataclass(frozen=True)
class TaskFailed(Event):
    kind: ClassVar[str] = "task-failed"
    task: str
    error: str


@dataclass(frozen=True)
class LogLine(Event):
    kind: ClassVar[str] = "log"
    line: str
    level: str = "INFO"


@dataclass(frozen=True)
class InstallStarted(Event):
    kind: ClassVar[str] = "install-started"
    source: str = ""
    """Where the answer file came from (redacted)."""
    hostname: str = ""
    """The answer file's [host] hostname: which file this machine is installing from."""


@dataclass(frozen=True)
class InstallFinished(Event):
    kind: ClassVar[str] = "install-finished"
    seconds: float = 0.0


@dataclass(frozen=True)
class InstallFailed(Event):
    kind: ClassVar[str] = "install-failed"
    task: str = ""
    error: str = ""
    log_tail: list[str] = field(default_factory=list)
    """The install log's last lines (secrets removed)."""


@dataclass(frozen=True)
class RecoveryCode(Event):
    """A recovery code, shown once: only on the machine's own --json-progress stream, never sent anywhere."""

    kind: ClassVar[str] = "recovery-code"
    secret: ClassVar[bool] = True
    directory: str = field(repr=False, default="")
    code: str = field(repr=False, default="")


@dataclass(frozen=True)
class FirstBootResult(Event):
    kind: ClassVar[str] = "firstboot-result"
    ok: bool = False
    detail: str = ""


def format_event(event: Event) -> str:
    """One human-readable line for an event."""
    match event:
        case TaskStarted(task=task, title=title, index=index, total=total):
            counter = f"[{index}/{total}] " if total else ""
            return f"{counter}{title} ..."
        case TaskProgress(task=task, fraction=fraction, message=message):
            percent = f"{fraction * 100:3.0f}% " if fraction is not None else ""
            return f"    {task}: {percent}{message}".rstrip()
        case TaskFinished(task=task, seconds=seconds):
            return f"    {task}: done ({seconds:.1f} s)"
        case TaskFailed(task=task, error=error):
            return f"    {task}: FAILED: {error}"
        case LogLine(line=line, level=level):
            return line if level in ("INFO", "DEBUG") else f"{level}: {line}"
        case InstallStarted(hostname=hostname):
            return f"installing Phyllome OS ({hostname})"
        case InstallFinished(seconds=seconds):
            return f"install finished in {seconds:.0f} s"
        case InstallFailed(task=task):
            return f"install stopped{f' in task {task}' if task else ''}"
        case RecoveryCode(directory=directory, code=code):
            return f"Recovery code for {directory}: {code}\n  write it down now: it is shown only this once"
        case FirstBootResult(ok=ok, detail=detail):
            return f"first boot {'done' if ok else 'failed'}: {detail}".rstrip(": ")
    return repr(event)
