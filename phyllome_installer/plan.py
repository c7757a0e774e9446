"""The install plan: from a validated config and a probed machine, a frozen list of named tasks.

What a plan shows is what it runs: :meth:`InstallPlan.dry_run` runs the very same tasks (:mod:`.tasks`) with a
runner that prints instead of running and target files that are shown instead of written (secrets redacted;
values only known while installing, such as filesystem UUIDs, appear as ``<...>``). The summary screen and
``--dry-run`` print that; only the engine runs the plan for real.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from storage import layout as layouts
from storage.probe import MachineProfile

from . import deploy, tasks
from .answers import InstallConfig
from .context import Context
from .core.errors import PhyllomeError
from .core.interrupt import Stop
from .core.runner import DryRunRunner, Runner
from .core.sinks import NullSink, Sink
from .core.targetfs import TargetFiles
from .sandbox import fat_driver, kernel_can_mount
from .target import resolve_target

log = logging.getLogger("phyllome.plan")

DEFAULT_SYSROOT = Path("/mnt/phyllome-sysroot")


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    run: Callable[[Context], None]
    writes: bool = True
    """Whether this task (or one before it) writes to the target: after it, a failure leaves an unbootable disk."""


@dataclass(frozen=True)
class InstallPlan:
    tasks: tuple[Task, ...]
    context: Context = field(compare=False)

    def render(self) -> str:
        ctx = self.context
        config = ctx.config
        lines = [f"Install plan: Phyllome OS onto {ctx.disk.describe()}", ""]
        lines += layouts.before_after(ctx.disk, ctx.layout)
        payload = config.payload
        lines += ["", f"Payload: {payload.kind} {deploy.refspec(payload)}"
                  + (f" from {payload.repo}" if payload.kind == "local" else ""),
                  "Kernel arguments: " + " ".join(ctx.kargs()),
                  f"Upgrades: {deploy.upgrade_source(payload)}",
                  f"VM store: {'encrypted with fscrypt' if config.storage.encryption.enabled else 'NOT encrypted'}",
                  ""]
        for index, (task, shown) in enumerate(self.dry_run(), 1):
            lines.append(f"[{index}/{len(self.tasks)}] {task.name}: {task.title}")
            lines += [f"    {line}" for line in shown]
        return "\n".join(lines) + "\n"

    def dry_run(self) -> list[tuple[Task, list[str]]]:
        """Each task with what it would do: the same code as the install, with a printing runner and files shown
        instead of written. A task that would fail shows why (and the dry run goes on, to show the whole plan).
        Nothing is written anywhere and no command runs."""
        runner = DryRunRunner(echo=False)
        ctx = replace(self.context, runner=runner, query=runner.asking(self.context.asks),
                      files=TargetFiles(dry=True, show=runner.note), sink=NullSink(),
                      stop=Stop(), applied=None, mounts=None, deployment=None, protected={},
                      passphrase=self.context.passphrase or "<passphrase>")
        out = []
        for task in self.tasks:
            start = len(runner.lines)
            try:
                task.run(ctx)
            except PhyllomeError as exc:
                runner.lines.append(f"would fail: {str(exc).splitlines()[0]}")
            out.append((task, [line.removeprefix("would ") for line in runner.lines[start:]]))
        if ctx.mounts is not None:
            start = len(runner.lines)
            ctx.mounts.unmount_all()
            out[-1][1].extend(line.removeprefix("would ") for line in runner.lines[start:])
        return out

    def problems(self) -> list[str]:
        """What the dry run says would fail."""
        return [line.removeprefix("fail: ") for _, shown in self.dry_run() for line in shown
                if line.startswith("fail: ")]


# ---------------------------------------------------------------------------------------------- the tasks


# ---------------------------------------------------------------------------------------------- building


def build(config: InstallConfig, machine: MachineProfile, runner: Runner, *, sysroot: Path | None = None,
          sandbox: bool = False, include_loop: bool = False, log_path: Path | None = None,
          sink: Sink | None = None, unattended: bool = True, stop: Stop | None = None,
          consent: str | None = None, esp_driver: str | None | bool = True,
          can_mount: Callable[[str], bool] | None = None) -> InstallPlan:
    """Resolve the target and lay out the install. Raises UserError for an unusable target; touches nothing.

    ``unattended``: the answer file's ``wipe`` must name the disk (interactively, the summary screen asks).
    ``consent``: the identity (``Disk.identity``) of the disk the user confirmed; by default the identity of the
    disk resolved now. Either way the check task refuses to go on if the path then names another disk.
    ``esp_driver``: how the ESP is mounted ("kernel", "fusefat" or None); by default what this live system has.
    """
    disk = resolve_target(config.storage, machine, unattended=unattended and not sandbox)
    layout = layouts.plan(disk.path, disk.size, root_fs=config.storage.root_fs,
                          compression=config.storage.compression)
    ctx = Context(config=config, disk=disk, layout=layout, runner=runner, sysroot=Path(sysroot or DEFAULT_SYSROOT),
                  cpu_vendor=machine.cpu_vendor, log_path=log_path, sink=sink or NullSink(), sandbox=sandbox,
                  include_loop=include_loop, fat_driver=fat_driver() if esp_driver is True else esp_driver,
                  stop=stop or Stop(), can_mount=can_mount or kernel_can_mount,
                  consent=disk.identity if consent is None else consent)
    steps = [
        Task("check", "Check the target and the payload", tasks.check, writes=False),
        Task("partition", f"Partition and format {disk.path}", tasks.partition),
        Task("mount", "Mount the new filesystems", tasks.mount),
        Task("ostree-init", "Prepare the ostree system root", tasks.ostree_init),
        Task("ostree-pull", "Copy the Phyllome OS payload", tasks.ostree_pull),
        Task("ostree-deploy", "Deploy Phyllome OS", tasks.ostree_deploy),
        Task("host-config", "Configure the host", tasks.host_config),
    ]
    if config.storage.encryption.enabled:
        steps.append(Task("fscrypt", "Encrypt the VM store", tasks.encrypt))
    steps += [
        Task("bootloader", "Install the boot loader", tasks.install_bootloader),
        Task("finish", "Finish", tasks.finish),
    ]
    return InstallPlan(tuple(steps), ctx)
