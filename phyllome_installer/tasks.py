"""The install's tasks, in order. Each is one function of the plan's :class:`~.plan.Context`.

The same code runs for real and in a dry run: there the runner prints instead of running and the target's files
are shown instead of written (``ctx.files``), so the summary screen and ``--dry-run`` show exactly what the install
will do. Values known only while installing (filesystem UUIDs, the deployment's checksum) appear as ``<...>``.
The boot loader is the last task that writes to the disk, so a failed install never boots half-written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from storage.apply import BlivetApplier, TargetMounts, recheck
from storage.fscrypt import Fscrypt
from storage.probe import Prober

from . import __version__, bootloader, deploy
from .answers import MIN_PASSPHRASE, control_character
from .core.errors import InstallFailure, UserError
from .core.files import BoundedReadError, read_bounded
from .core.progress import TaskProgress
from .core.secrets import REDACTOR
from .hostconfig import HostConfig, fstab

if TYPE_CHECKING:
    from .context import Context

log = logging.getLogger("phyllome.tasks")

MAX_LOG_COPY = 64 << 20


def check(ctx: Context) -> None:
    if ctx.files.dry:  # the plan was built from a probe a moment ago; the real run probes again right here
        ctx.files.note(f"re-probe {ctx.disk.path}: not the boot medium, not busy, unchanged, the disk confirmed")
    else:
        prober = Prober(ctx.runner, include_loop=ctx.include_loop, only=[ctx.disk.name])
        now = recheck(prober, ctx.disk)
        if ctx.consent and now.identity != ctx.consent:
            raise UserError(f"{now.path} is not the disk you agreed to erase: it is now {now.describe()} "
                            f"({now.identity or 'no serial'}), you confirmed {ctx.consent}; nothing was written",
                            hint="the disks were renumbered (a disk was plugged in or out): choose the disk again")
    if ctx.files.dry and ctx.sandbox:
        ctx.files.note("build the sandbox payload (once) and check it")
    else:
        deploy.check_payload(ctx.asks, ctx.config.payload)
        missing = deploy.check_tree(ctx.asks, ctx.config.payload,
                                    encrypted_store=ctx.config.storage.encryption.enabled)
        if missing:
            raise UserError(f"payload: {deploy.refspec(ctx.config.payload)} is not a bootable ostree tree: it has no "
                            + ", ".join(missing), hint="build the payload with the ostree layout (docs/install.md)")
        taken = deploy.payload_names(ctx.asks, ctx.config.payload)
        for user in ctx.config.users:
            if user.name in taken:
                raise UserError(f"users: {user.name!r} is already a user or group of the payload; choose another "
                                "name for the admin user")
    if not ctx.sandbox and not deploy.ships_bootupd(ctx.asks, ctx.config.payload):
        # What the boot loader task will need, checked while nothing is written (bootloader.choose decides then).
        if not bootloader.grub_available() and not all(  # the payload's GRUB: what the boot loader task looks for
                deploy.ships(ctx.asks, ctx.config.payload, "/" + path) for path in bootloader.PAYLOAD_GRUB):
            raise UserError("no boot loader can be installed: the payload ships neither bootupctl nor GRUB, and "
                            "this live system has no grub-install",
                            hint="install Debian's grub-efi-amd64-bin or Fedora's grub2-efi-x64-modules on the live "
                            "system")
        if not ctx.fat_driver:
            raise UserError("GRUB needs the EFI system partition mounted: this kernel has no vfat and there is no "
                            "fusefat")
    if not ctx.can_mount(ctx.layout.root_fs):
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


def partition(ctx: Context) -> None:
    ctx.applied = BlivetApplier(ctx.runner, ctx.sink, include_loop=ctx.include_loop,
                                dry=ctx.files.dry).apply(ctx.layout, ctx.disk)


def mount(ctx: Context) -> None:
    assert ctx.applied is not None
    ctx.mounts = TargetMounts(ctx.runner, ctx.sysroot, fat_driver=ctx.fat_driver or "kernel", files=ctx.files)
    roles = ("root", "boot", "esp") if ctx.fat_driver else ("root", "boot")
    ctx.mounts.mount_layout(ctx.layout, ctx.applied, roles)


def ostree_init(ctx: Context) -> None:
    for argv in deploy.init_commands(ctx.sysroot):
        ctx.runner.run(argv)


def ostree_pull(ctx: Context) -> None:
    payload = ctx.config.payload
    if payload.kind == "local" and not payload.upgrade_url:
        log.warning("this host will not upgrade: [payload] names no upgrade_url, so it gets no ostree remote")
    expected = deploy.count_objects(Path(payload.repo)) if payload.kind == "local" else None

    def report(count: int, total: int | None) -> None:
        fraction = min(count / total, 1.0) if total else None
        ctx.sink.emit(TaskProgress("ostree-pull", fraction, f"{count} objects" + (f" of {total}" if total else "")))

    with deploy.ObjectCounter(deploy.repo_of(ctx.sysroot), expected, report, enabled=not ctx.files.dry):
        for argv in deploy.pull_commands(ctx.sysroot, payload):
            ctx.runner.run(argv, on_line=lambda line, _: ctx.sink.emit(TaskProgress("ostree-pull", None, line)))


def ostree_deploy(ctx: Context) -> None:
    for argv in deploy.deploy_commands(ctx.sysroot, ctx.config.payload, ctx.kargs()):
        ctx.runner.run(argv)
    ctx.deployment = ctx.deployment_dir if ctx.files.dry else deploy.deployment_dir(ctx.sysroot)
    copied = deploy.copy_ostree_boot(ctx.deployment, ctx.sysroot / "boot", ctx.files)
    if copied:
        ctx.progress("ostree-deploy", f"copied {len(copied)} files from /usr/lib/ostree-boot to /boot")
    for argv in deploy.durable_commands(ctx.sysroot):
        ctx.runner.run(argv)
    # The deployment's /var is the stateroot's at boot: bind it so that users' homes land there.
    assert ctx.mounts is not None
    var = deploy.stateroot_var(ctx.sysroot)
    ctx.mounts.mount(str(var), str((ctx.deployment / "var").relative_to(ctx.sysroot)), "bind")


def host_config(ctx: Context) -> None:
    assert ctx.deployment is not None and ctx.applied is not None
    host = HostConfig(ctx.runner, ctx.deployment, files=ctx.files)
    host.system_files(ctx.config.host, cpu_vendor=ctx.cpu_vendor,
                      fstab_text=fstab(ctx.applied.uuids, ctx.layout.root_fs))
    for user in ctx.config.users:
        host.add_user(user)
    host.firstboot(__version__, ctx.config.firstboot)
    host.report_url(ctx.config.report.url)  # the first boot's result goes where the install's events went


def encrypt(ctx: Context) -> None:
    assert ctx.deployment is not None and ctx.passphrase is not None
    encryption = ctx.config.storage.encryption
    tool = Fscrypt(ctx.runner, ctx.deployment / "etc" / "fscrypt.conf", files=ctx.files)
    tool.write_config()
    tool.setup(ctx.sysroot)
    for directory in encryption.protect:
        ctx.protected[directory] = tool.encrypt(ctx.store(directory), ctx.sysroot, ctx.passphrase,
                                                recovery=encryption.recovery_key)
        ctx.progress("fscrypt", f"{directory} is encrypted")


def install_bootloader(ctx: Context) -> None:
    assert ctx.deployment is not None and ctx.applied is not None
    backend = bootloader.choose(ctx.deployment, sandbox=ctx.sandbox)
    boot = ctx.sysroot / "boot"
    if backend == "none":
        status = ctx.runner.run(["ostree", "admin", "status", f"--sysroot={ctx.sysroot}"]).stdout
        if ctx.files.dry:
            ctx.files.note("check that ostree lists the deployment and wrote its BLS entry")
            return
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
        install_grub(ctx, boot)


def _tree_ships(ctx: Context, paths: tuple[str, ...], what: str) -> bool:
    """Whether the deployed tree has every one of `paths` (a dry run, which deploys nothing, assumes it does)."""
    assert ctx.deployment is not None
    if ctx.files.dry:
        ctx.files.note(f"if the deployed tree ships {what}: " + ", ".join(f"/{p}" for p in paths))
        return True
    missing = bootloader.missing_from(ctx.deployment, paths)
    if missing:
        log.warning("the deployed tree lacks %s", ", ".join(f"/{m}" for m in missing))
    return not missing


def install_grub(ctx: Context, boot: Path) -> None:
    """GRUB for EFI (the payload's when it ships one), its menu, and ostree told to keep the menu up to date."""
    assert ctx.deployment is not None and ctx.applied is not None and ctx.mounts is not None
    payload_grub = _tree_ships(ctx, bootloader.PAYLOAD_GRUB, "GRUB for EFI (else this system's is installed)")
    mkconfig = _tree_ships(ctx, bootloader.MKCONFIG, "grub-mkconfig with ostree's 15_ostree (else the installer "
                                                     "writes the menu once, from the BLS entries)")
    if payload_grub or mkconfig:  # what the payload's tools need in a chroot of the deployment
        for source in ("/dev", "/proc", "/sys"):
            ctx.mounts.bind(Path(source), ctx.deployment / source.lstrip("/"))
        ctx.mounts.bind(boot, ctx.deployment / "boot")
        ctx.mounts.bind(boot / "efi", ctx.deployment / "boot/efi")
    if payload_grub:
        signed = _tree_ships(ctx, bootloader.SIGNED_CHAIN, "shim and a signed GRUB: the Secure Boot chain (else "
                                                           "an unsigned GRUB, which boots only with Secure Boot off)")
        ctx.runner.run(bootloader.payload_grub_install_command(ctx.deployment, secure_boot=signed))
        if signed:  # the signed image reads its config beside itself ($cmdpath): the stub that finds /boot
            ctx.files.write(ctx.sysroot / "boot/efi/EFI/BOOT/grub.cfg", bootloader.stub_cfg(ctx.applied.uuids["boot"]),
                            mode=None)  # FAT: no modes
        ctx.progress("bootloader", "the Secure Boot chain from the payload installed: shim -> signed GRUB -> "
                                   "signed kernel" if signed else
                                   "GRUB for EFI from the payload installed, unsigned: Secure Boot must be off")
    else:
        ctx.runner.run(bootloader.grub_install_command(ctx.sysroot / "boot/efi", boot))
        ctx.progress("bootloader", "GRUB for EFI from this live system installed (the payload ships none)")
    uuid = ctx.applied.uuids["boot"]
    if mkconfig:
        mkconfig_menu(ctx, boot)
    else:
        entries = [] if ctx.files.dry else bootloader.read_bls(boot)
        ctx.files.write(bootloader.loader_dir(boot) / "grub.cfg", bootloader.grub_cfg(entries, uuid))
    ctx.files.write(bootloader.grub_dir(boot) / "grub.cfg", bootloader.stub_cfg(uuid))
    if not mkconfig:
        ctx.progress("bootloader", "boot menu written once: the payload cannot rewrite it (no grub-mkconfig "
                                   "with ostree's 15_ostree)")
        return
    ctx.runner.run(["ostree", "config", f"--repo={deploy.repo_of(ctx.sysroot)}", "set", "sysroot.bootloader",
                    "grub2"])
    ctx.progress("bootloader", "boot menu written by the payload's grub-mkconfig; ostree runs it again at every "
                               "deployment change")


MAX_MENU = 4 << 20


def mkconfig_menu(ctx: Context, boot: Path) -> None:
    """The first menu from the deployment's grub-mkconfig, run as ostree runs it later (its binds made by the
    caller, and the physical sysroot at /sysroot: 15_ostree reads /ostree, a link into it, and without it writes
    no entry). Written under a partial name, checked to boot the new deployment, then renamed into place."""
    assert ctx.deployment is not None and ctx.mounts is not None
    ctx.mounts.bind(ctx.sysroot, ctx.deployment / "sysroot")
    version = "<N>" if ctx.files.dry else bootloader.boot_version(boot)
    if version is None:
        raise InstallFailure("ostree's /boot/loader is not a link to loader.0 or loader.1: no boot menu written")
    ctx.runner.run(bootloader.mkconfig_command(ctx.deployment, version))
    loader = boot / f"loader.{version}"
    partial = loader / bootloader.MENU_PARTIAL
    if ctx.files.dry:
        ctx.files.note(f"check that {partial} boots the new deployment (an ostree= argument that leads to it)")
    else:
        try:
            menu = read_bounded(partial, MAX_MENU, follow_symlinks=False).decode(errors="replace")
        except BoundedReadError as exc:
            raise InstallFailure(f"the payload's grub-mkconfig wrote no readable menu: {exc}") from None
        if ctx.deployment.resolve() not in bootloader.menu_deployments(menu, ctx.sysroot):
            raise InstallFailure(f"the menu the payload's grub-mkconfig wrote ({partial}) has no entry that boots "
                                 f"the new deployment {ctx.deployment.name}: nothing boots",
                                 hint="the payload's /etc/grub.d/15_ostree wrote no entry (is ostree-boot's "
                                      "15_ostree there and executable?)")
    ctx.files.rename(partial, loader / "grub.cfg")


def finish(ctx: Context) -> None:
    if ctx.protected:
        tool = Fscrypt(ctx.runner, ctx.deployment_dir / "etc" / "fscrypt.conf", files=ctx.files)
        for protected in ctx.protected.values():
            tool.lock(Path(protected.directory))
    if ctx.log_path is not None and ctx.files.dry:
        ctx.files.note("copy this run's log to /var/log/phyllome/install.log on the target")
    elif ctx.log_path is not None:
        try:  # this run's log only: a regular file, never through a symlink (it is redacted as it is written)
            text = read_bounded(ctx.log_path, MAX_LOG_COPY, follow_symlinks=False)
        except BoundedReadError as exc:
            log.warning("the install log is not copied to the target: %s", exc)
            return
        target = deploy.stateroot_var(ctx.sysroot) / "log" / "phyllome" / "install.log"
        ctx.files.mkdir(target.parent, 0o700)
        ctx.files.write(target, text, 0o600)
        ctx.progress("finish", f"install log copied to /var/log/phyllome/install.log on {ctx.disk.path}")


