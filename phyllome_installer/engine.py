"""Runs an install plan task by task: progress events, the install log, a clean stop on the first failure.

Whatever happens, everything the install mounted is unmounted afterwards, innermost first, even after a stop was
requested (a signal): cleanup is shielded. A failed run can be run again: the partition task starts from scratch.

Exit codes: 2 ("nothing was touched") only for a failure before the first task that writes to the target;
afterwards 1 (130 when interrupted), and the result says plainly that the disk is not bootable.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from .core.errors import EXIT_FAILED, CommandError, PhyllomeError, UserError
from .core.interrupt import Interrupted
from .core.progress import TaskFailed, TaskFinished, TaskStarted
from .core.secrets import REDACTOR
from .plan import InstallPlan

log = logging.getLogger("phyllome.engine")


@dataclass
class Result:
    ok: bool
    failed_task: str = ""
    error: str = ""
    exit_code: int = 0
    touched: bool = False
    """Whether the target was written to: then a failed install left a disk that does not boot."""
    recovery_codes: dict[str, str] = field(default_factory=dict, repr=False)
    """Protected directory -> its recovery code, to show the user once. Never logged."""
    lazy_unmounts: list[str] = field(default_factory=list)


def run(plan: InstallPlan) -> Result:
    ctx = plan.context
    total = len(plan.tasks)
    result = Result(ok=True)
    touched = False
    try:
        for index, task in enumerate(plan.tasks, 1):
            touched = touched or task.writes
            ctx.sink.emit(TaskStarted(task.name, task.title, index, total))
            log.debug("[%d/%d] %s: %s", index, total, task.name, task.title)
            started = time.monotonic()
            try:
                ctx.stop.check()
                task.run(ctx)
            except Exception as exc:  # every failure stops the install with the task named
                result = _failure(task.name, exc, touched, ctx.disk.path)
                ctx.sink.emit(TaskFailed(task.name, result.error))
                return result
            ctx.sink.emit(TaskFinished(task.name, seconds=time.monotonic() - started))
        result.recovery_codes = {d: p.recovery_code for d, p in ctx.protected.items() if p.recovery_code}
        result.touched = True
        log.info("install finished: Phyllome OS is on %s", ctx.disk.describe())
        return result
    finally:
        if ctx.mounts is not None:
            with ctx.stop.shielded():
                result.lazy_unmounts = ctx.mounts.unmount_all()


NOT_BOOTABLE = "the disk {disk} is not bootable: run the install again (it starts from an empty disk)"


def _failure(task: str, exc: BaseException, touched: bool, disk: str) -> Result:
    if isinstance(exc, Interrupted):
        log.error("interrupted in task %s: %s", task, exc)
        error = f"{exc}" + (f"; {NOT_BOOTABLE.format(disk=disk)}" if touched else "; nothing was written")
        return Result(ok=False, failed_task=task, error=REDACTOR.redact(error), exit_code=exc.exit_code,
                      touched=touched)
    if isinstance(exc, CommandError):
        error = f"{exc.message}"
        log.error("task %s failed: %s (exit code %d)", task, exc.argv_display, exc.returncode)
    elif isinstance(exc, PhyllomeError):
        error = str(exc)
        log.error("task %s failed: %s", task, error)
    else:
        error = f"internal error: {type(exc).__name__}: {exc}"
        log.error("task %s failed with an internal error", task, exc_info=True)
    code = exc.exit_code if isinstance(exc, UserError) and not touched else EXIT_FAILED
    if touched:
        error += "\n" + NOT_BOOTABLE.format(disk=disk)
    return Result(ok=False, failed_task=task, error=REDACTOR.redact(error), exit_code=code, touched=touched)
