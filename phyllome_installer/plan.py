"""The install plan: from a validated config and a probed machine, a frozen list of named tasks.

Each task knows the exact commands it will run (secrets redacted; values only known while installing, such as
filesystem UUIDs, are shown as ``<...>``). The summary screen and ``--dry-run`` print the plan; only the engine
runs it. The boot loader is the last task that writes to the disk, so a failed install never boots half-written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from storage import layout as layouts
from storage.apply import Applied, BlivetApplier, TargetMounts, recheck
from storage.fscrypt import Fscrypt, Protected
from storage.probe import Disk, MachineProfile, Prober

from . import __version__, bootloader, deploy
from .answers import MIN_PASSPHRASE, InstallConfig, control_character
from .core.errors import UserError
from .core.files import BoundedReadError, read_bounded
from .core.interrupt import Stop
from .core.progress import NullSink, Sink, TaskProgress
from .core.runner import Runner, display
from .core.secrets import REDACTOR
from .hostconfig import HostConfig, fstab
from .machine import resolve_target
from .sandbox import fat_driver, kernel_can_mount

log = logging.getLogger("phyllome.plan")

DEFAULT_SYSROOT = Path("/mnt/phyllome-sysroot")
MAX_LOG_COPY = 64 << 20


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
    stop: Stop = field(default_factory=Stop)
    """Set by a signal or a front end: the engine stops before the next task (the runner, at the next command)."""

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


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    commands: tuple[str, ...]
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
                  f"VM store: {'encrypted with fscrypt' if config.storage.encryption.enabled else 'NOT encrypted'}",
                  ""]
        for index, task in enumerate(self.tasks, 1):
            lines.append(f"[{index}/{len(self.tasks)}] {task.name}: {task.title}")
            lines += [f"    {command}" for command in task.commands]
        return "\n".join(lines) + "\n"


def _show(argv: list[str]) -> str:
    return display(argv)


# ---------------------------------------------------------------------------------------------- the tasks


def _check(ctx: Context) -> None:
    prober = Prober(ctx.runner, include_loop=ctx.include_loop, only=[ctx.disk.name])
    recheck(prober, ctx.disk)
    deploy.check_payload(ctx.runner, ctx.config.payload)
    if not kernel_can_mount(ctx.layout.root_fs):
        raise UserError(f"this kernel cannot mount {ctx.layout.root_fs}, the chosen root filesystem",
                        hint="set storage.root_fs = \"ext4\", or boot a kernel with F2FS")
    encryption = ctx.config.storage.encryption
    if encryption.enabled:
        if encryption.passphrase is not None:
            ctx.passphrase = encryption.passphrase.get_secret_value()
        else:
            ctx.passphrase = read_passphrase_file(Path(encryption.passphrase_file))
            if len(ctx.passphrase) < MIN_PASSPHRASE:
                raise UserError(f"the passphrase in {encryption.passphrase_file} has fewer than "
                                f"{MIN_PASSPHRASE} characters")
    ctx.progress("check", f"target {ctx.disk.describe()} is free; payload is available")


def read_passphrase_file(path: Path) -> str:
    """The first line of a passphrase file: a regular file of at most 4 KiB, no control character in the line."""
    where = f"storage.encryption.passphrase_file: {path}"
    try:
        text = read_bounded(path, 4096).decode("utf-8-sig")
    except BoundedReadError as exc:
        raise UserError(f"{where} {exc.reason}") from None
    except UnicodeDecodeError:
        raise UserError(f"{where} is not UTF-8 text") from None
    line = text.split("\n", 1)[0].removesuffix("\r")
    REDACTOR.add(line)
    if not line:
        raise UserError(f"{where} holds no passphrase on its first line")
    if control_character(line):
        raise UserError(f"{where}: the passphrase contains {control_character(line)}; control characters are "
                        "not allowed")
    return line


def _partition(ctx: Context) -> None:
    ctx.applied = BlivetApplier(ctx.runner, ctx.sink, include_loop=ctx.include_loop).apply(ctx.layout, ctx.disk)


def _mount(ctx: Context) -> None:
    assert ctx.applied is not None
    ctx.mounts = TargetMounts(ctx.runner, ctx.sysroot, fat_driver=ctx.fat_driver or "kernel")
    roles = ("root", "boot", "esp") if ctx.fat_driver else ("root", "boot")
    ctx.mounts.mount_layout(ctx.layout, ctx.applied, roles)


def _ostree_init(ctx: Context) -> None:
    for argv in deploy.init_commands(ctx.sysroot):
        ctx.runner.run(argv)


def _ostree_pull(ctx: Context) -> None:
    payload = ctx.config.payload
    expected = deploy.count_objects(Path(payload.repo)) if payload.kind == "local" else None

    def report(count: int, total: int | None) -> None:
        fraction = min(count / total, 1.0) if total else None
        ctx.sink.emit(TaskProgress("ostree-pull", fraction, f"{count} objects" + (f" of {total}" if total else "")))

    with deploy.ObjectCounter(deploy.repo_of(ctx.sysroot), expected, report):
        for argv in deploy.pull_commands(ctx.sysroot, payload):
            ctx.runner.run(argv, on_line=lambda line, _: ctx.sink.emit(TaskProgress("ostree-pull", None, line)))


def _ostree_deploy(ctx: Context) -> None:
    for argv in deploy.deploy_commands(ctx.sysroot, ctx.config.payload, ctx.kargs()):
        ctx.runner.run(argv)
    ctx.deployment = deploy.deployment_dir(ctx.sysroot)
    copied = deploy.copy_ostree_boot(ctx.deployment, ctx.sysroot / "boot")
    if copied:
        ctx.progress("ostree-deploy", f"copied {len(copied)} files from /usr/lib/ostree-boot to /boot")
    # The deployment's /var is the stateroot's at boot: bind it so that users' homes land there.
    assert ctx.mounts is not None
    var = deploy.stateroot_var(ctx.sysroot)
    ctx.mounts.mount(str(var), str((ctx.deployment / "var").relative_to(ctx.sysroot)), "bind")


def _host_config(ctx: Context) -> None:
    assert ctx.deployment is not None and ctx.applied is not None
    host = HostConfig(ctx.runner, ctx.deployment)
    host.system_files(ctx.config.host, cpu_vendor=ctx.cpu_vendor,
                      fstab_text=fstab(ctx.applied.uuids, ctx.layout.root_fs))
    for user in ctx.config.users:
        host.add_user(user)
    host.firstboot(__version__, ctx.config.firstboot)


def _fscrypt(ctx: Context) -> None:
    assert ctx.deployment is not None and ctx.passphrase is not None
    encryption = ctx.config.storage.encryption
    tool = Fscrypt(ctx.runner, ctx.deployment / "etc" / "fscrypt.conf")
    tool.write_config()
    tool.setup(ctx.sysroot)
    for directory in encryption.protect:
        ctx.protected[directory] = tool.encrypt(ctx.store(directory), ctx.sysroot, ctx.passphrase,
                                                recovery=encryption.recovery_key)
        ctx.progress("fscrypt", f"{directory} is encrypted")


def _bootloader(ctx: Context) -> None:
    assert ctx.deployment is not None and ctx.applied is not None
    backend = bootloader.choose(ctx.deployment, sandbox=ctx.sandbox)
    boot = ctx.sysroot / "boot"
    if backend == "none":
        status = ctx.runner.run(["ostree", "admin", "status", f"--sysroot={ctx.sysroot}"]).stdout
        if ctx.deployment.name not in status:
            raise UserError(f"ostree does not list the new deployment {ctx.deployment.name}")
        entries = bootloader.read_bls(boot)
        if not entries:
            raise UserError("ostree wrote no boot entry in /boot/loader/entries")
        ctx.progress("bootloader", f"sandbox: {len(entries)} BLS entry, no boot loader installed")
    elif backend == "bootupd":
        ctx.runner.run(bootloader.bootupd_command(ctx.deployment, ctx.disk.path))
    else:
        if not ctx.fat_driver:
            raise UserError("GRUB needs the EFI system partition mounted: this kernel has no vfat and there is "
                            "no fusefat")
        ctx.runner.run(bootloader.grub_install_command(ctx.sysroot / "boot/efi", boot))
        cfg = bootloader.grub_dir(boot) / "grub.cfg"
        cfg.write_text(bootloader.grub_cfg(bootloader.read_bls(boot), ctx.applied.uuids["boot"]))


def _finish(ctx: Context) -> None:
    if ctx.protected:
        tool = Fscrypt(ctx.runner, ctx.deployment_dir / "etc" / "fscrypt.conf")
        for protected in ctx.protected.values():
            tool.lock(Path(protected.directory))
    if ctx.log_path is not None:
        try:  # this run's log only: a regular file, never through a symlink (it is redacted as it is written)
            text = read_bounded(ctx.log_path, MAX_LOG_COPY, follow_symlinks=False)
        except BoundedReadError as exc:
            log.warning("the install log is not copied to the target: %s", exc)
            return
        target = deploy.stateroot_var(ctx.sysroot) / "log" / "phyllome" / "install.log"
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text)
        ctx.progress("finish", f"install log copied to /var/log/phyllome/install.log on {ctx.disk.path}")


# ---------------------------------------------------------------------------------------------- building


def build(config: InstallConfig, machine: MachineProfile, runner: Runner, *, sysroot: Path | None = None,
          sandbox: bool = False, include_loop: bool = False, log_path: Path | None = None,
          sink: Sink | None = None, unattended: bool = True, stop: Stop | None = None) -> InstallPlan:
    """Resolve the target and lay out the install. Raises UserError for an unusable target; touches nothing.

    ``unattended``: the answer file's ``wipe`` must name the disk (interactively, the summary screen asks).
    """
    disk = resolve_target(config.storage, machine, unattended=unattended and not sandbox)
    layout = layouts.plan(disk.path, disk.size, root_fs=config.storage.root_fs,
                          compression=config.storage.compression)
    ctx = Context(config=config, disk=disk, layout=layout, runner=runner, sysroot=Path(sysroot or DEFAULT_SYSROOT),
                  cpu_vendor=machine.cpu_vendor, log_path=log_path, sink=sink or NullSink(), sandbox=sandbox,
                  include_loop=include_loop, fat_driver=fat_driver(), stop=stop or Stop())
    root, boot = str(ctx.sysroot), str(ctx.sysroot / "boot")
    part = {spec.role: spec for spec in layout.partitions}
    devices = {role: f"<{role} partition>" for role in part}
    mount_lines = [f"mount {devices['root']} {root}", f"mount {devices['boot']} {boot}"]
    if ctx.fat_driver == "kernel":
        mount_lines.append(f"mount -o umask=0077 {devices['esp']} {boot}/efi")
    elif ctx.fat_driver == "fusefat":
        mount_lines.append(f"fusefat -o rw+,fsname={devices['esp']} {devices['esp']} {boot}/efi")
    deploy_lines = [_show(a) for a in deploy.deploy_commands(ctx.sysroot, config.payload, ctx.kargs())]
    deploy_lines += ["copy /usr/lib/ostree-boot to /boot (where the tree has it)",
                     f"mount --bind {deploy.stateroot_var(ctx.sysroot)} {ctx.deployment_dir}/var"]
    host_lines = ["write /etc/hostname, vconsole.conf, locale.conf, localtime, fstab (by UUID)",
                  "write /etc/modprobe.d/phyllome-kvm.conf (nested=1), /etc/modules-load.d/phyllome-vfio.conf"]
    for user in config.users:
        host_lines.append(f"useradd --root {ctx.deployment_dir} --create-home --home-dir /var/home/{user.name} "
                          f"... {user.name}")
        if user.password is not None or user.password_hash is not None:
            host_lines.append(f"chpasswd --encrypted --root {ctx.deployment_dir}  < {user.name}:<hash> on stdin")
        if user.ssh_keys:
            host_lines.append(f"write /var/home/{user.name}/.ssh/authorized_keys ({len(user.ssh_keys)} keys)")
    host_lines.append("write /etc/phyllome/firstboot.toml ([firstboot] of the answers)"
                      + (", /etc/phyllome/firstboot (the first-boot marker)" if config.firstboot.enabled else
                         "; no first-boot marker ([firstboot] enabled = false)"))
    tasks = [
        Task("check", "Check the target and the payload",
             (f"re-probe {disk.path}: not the boot medium, not busy, unchanged", "check the payload"), _check,
             writes=False),
        Task("partition", f"Partition and format {disk.path}",
             (f"blivet: erase {disk.path}, GPT, " + ", ".join(
                 f"{p.name} {layouts.human_size(p.size)} {p.fstype} {' '.join(p.mkfs_options)}".rstrip()
                 for p in layout.partitions),
              *(f"sfdisk --part-type {disk.path} {p.number} {p.type_guid}" for p in layout.partitions),
              f"partx -u {disk.path}", f"sfdisk -J {disk.path}; blkid -p (verify)"), _partition),
        Task("mount", "Mount the new filesystems", tuple(mount_lines), _mount),
        Task("ostree-init", "Prepare the ostree system root",
             tuple(_show(a) for a in deploy.init_commands(ctx.sysroot)), _ostree_init),
        Task("ostree-pull", "Copy the Phyllome OS payload",
             tuple(_show(a) for a in deploy.pull_commands(ctx.sysroot, config.payload)), _ostree_pull),
        Task("ostree-deploy", "Deploy Phyllome OS", tuple(deploy_lines), _ostree_deploy),
        Task("host-config", "Configure the host", tuple(host_lines), _host_config),
    ]
    if config.storage.encryption.enabled:
        tasks.append(Task("fscrypt", "Encrypt the VM store", (
            f"write {ctx.deployment_dir}/etc/fscrypt.conf (v2 policies)", f"fscrypt setup {root} --quiet",
            *(f"fscrypt encrypt {ctx.store(d)} --source=custom_passphrase --name=vmstore --quiet  < passphrase on "
              "stdin" for d in config.storage.encryption.protect),
            *(["fscrypt metadata create protector ... --name=recovery  < generated recovery code on stdin"]
              if config.storage.encryption.recovery_key else []),
        ), _fscrypt))
    backend = (f"ostree admin status --sysroot={root}; boot loader: none (sandbox: BLS entries only)" if sandbox
               else "boot loader: bootupd or grub-efi (chosen from the deployed tree)")
    tasks += [
        Task("bootloader", "Install the boot loader", (backend,), _bootloader),
        Task("finish", "Finish", ("lock the VM store", "copy the install log to /var/log/phyllome/install.log",
                                  "unmount everything, innermost first"), _finish),
    ]
    return InstallPlan(tuple(tasks), ctx)
