"""``phyllome-install`` and ``phyllome-firstboot``: the composition root.

This is the only module that wires runners, sinks, logs and front ends together. Textual is imported lazily,
only when a TUI is asked for.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .cli_firstboot import (
    add_machine_options,
    cmd_check,
    cmd_run,
    cmd_screens,
    cmd_unlock,
    cmd_vm_create,
    cmd_vm_os_list,
    cmd_vm_plan,
    positive_arg,
    size_arg,
)
from .cli_run import Handler, console_sink, interruptible, require_terminal, run
from .core.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    NotAvailable,
    UserError,
)
from .core.facts import GPU_REQUESTS, VM_STORE, VMMS
from .core.interrupt import Stop
from .core.logs import LOG_DIR

log = logging.getLogger("phyllome.cli")


def _not_built(feature: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        raise NotAvailable(f"{feature} is not available in this build yet")

    return handler


# ---------------------------------------------------------------------------------------------- handlers


def cmd_tui(args: argparse.Namespace) -> int:
    from screens.app import create_installer_app  # lazy: the only path that loads textual

    from .discover import Discovery

    require_terminal("run it on a console, or install unattended with `phyllome-install install --answers FILE`")
    installer = _installer(args, unattended=False)
    # The same discovery as `install` (bootanswers.find_answers), run by the TUI at start.
    app = create_installer_app(installer, answers=args.answers, log_path=args.log,
                               discovery=Discovery(installer.runner))
    app.run()
    return app.return_code or 0


def cmd_validate(args: argparse.Namespace) -> int:
    from . import answers

    result = answers.load(args.file)
    problems = list(result.problems)
    if result.config is not None and args.machine is not None:
        from .target import check_against_profile

        problems += check_against_profile(result.config, args.file, args.machine)
    for warning in result.warnings:
        print(f"{warning} (warning)", file=sys.stderr)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        count = len(problems)
        print(f"{args.file}: {count} problem{'s' if count != 1 else ''}; nothing was changed", file=sys.stderr)
        return EXIT_BAD_INPUT
    assert result.config is not None
    print(f"{args.file}: {answers.summary(result.config)}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from storage.probe import Prober, human_size

    from .core.runner import SubprocessRunner

    profile = Prober(SubprocessRunner(), include_loop=args.include_loop).profile()
    if args.json:
        print(profile.model_dump_json(indent=2))
        return 0
    print(f"CPU {profile.cpu_vendor}, firmware {profile.firmware.upper()}, RAM {human_size(profile.ram_bytes)}")
    if not profile.disks:
        print("no disks found" + ("" if args.include_loop else " (loop devices are listed with --include-loop)"))
    for disk in profile.disks:
        state = "usable" if disk.usable else "not usable: " + "; ".join(disk.flags.values())
        print(f"{disk.path}  {human_size(disk.size):>10}  {disk.transport:<7} {disk.model or '-'}"
              f"  serial {disk.serial or '-'}  ({state})")
        for part in disk.partitions:
            what = " ".join(x for x in (part.fstype, part.label and f"label={part.label}",
                                        part.mountpoint and f"on {part.mountpoint}") if x)
            print(f"  {part.path}  {human_size(part.size):>10}  {what}")
    return 0


def _installer(args: argparse.Namespace, *, unattended: bool = True):
    from .core.runner import SubprocessRunner
    from .frontend import Installer
    from .sandbox import BASE, Sandbox

    sandbox = Sandbox(args.sandbox_dir or BASE) if args.sandbox else None
    stop = getattr(args, "stop", None) or Stop()
    image = getattr(args, "target_image", None)
    if image is not None and sandbox is not None:
        raise UserError("--target-image and --sandbox exclude each other")
    return Installer(SubprocessRunner(stop=stop), log_path=args.log, sandbox=sandbox, unattended=unattended,
                     stop=stop, target_image=image, image_size=getattr(args, "image_size", None))


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .core.runner import SubprocessRunner
    from .sandbox import BASE, Sandbox

    sandbox = Sandbox(args.sandbox_dir or BASE)
    sandbox.clean(SubprocessRunner())
    print(f"removed the sandbox in {sandbox.base}")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from .answers import config_from_bytes
    from .bootanswers import find_answers
    from .core.progress import RecoveryCode
    from .discover import Discovery
    from .frontend import after_install, post_text

    installer = _installer(args)
    found = find_answers(Discovery(installer.runner), args.answers)
    if found is None:
        raise UserError("no answer file: give --answers FILE (or run phyllome-install for the interactive installer)")
    log.debug("answer file: %s", found.source)
    config = config_from_bytes(found.data, found.name)
    for notice in installer.notices:
        print(f"notice: {notice}", file=sys.stderr)
    if args.dry_run:
        plan = installer.plan(config)
        problems = plan.problems()
        if args.json_progress:  # the stream stays JSON lines: the plan is one event
            import json

            print(json.dumps({"event": "plan", "text": plan.render(), "problems": problems}, sort_keys=True))
        else:
            print(plan.render(), end="")
            print(f"after the install: {post_text(config.post.action, _on_this_machine(args))}")
        for problem in problems:
            print(f"the install would fail: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT if problems else 0
    sink = console_sink(args)
    result = installer.install(config, sink)  # install-started ... install-finished or install-failed
    for notice in installer.notices:
        if "earlier install" in notice:
            print(f"notice: {notice}", file=sys.stderr)
    if not result.ok:
        untouched = "" if result.touched else "\n  nothing was written to any disk"
        print(f"install failed in task {result.failed_task}: {result.error}{untouched}\n  the log is {args.log}",
              file=sys.stderr)
        return result.exit_code or EXIT_FAILED
    # Shown once, on the console only: never logged, never sent; --json-progress: its own event on stdout.
    for directory, code in result.recovery_codes.items():
        if args.json_progress:
            sink.emit(RecoveryCode(directory=directory, code=code))
        else:
            print(f"Recovery code for {directory}: {code}\n  write it down now: it is shown only this once")
    if not args.json_progress:
        print("Phyllome OS is installed.")
    if _on_this_machine(args):
        problem = after_install(installer.runner, config.post.action)
        if problem:
            print(problem, file=sys.stderr)
    return 0


def _on_this_machine(args: argparse.Namespace) -> bool:
    """The install's target is this machine's disk (not the sandbox, not an image): [post] applies to it."""
    return not args.sandbox and getattr(args, "target_image", None) is None


cmd_tui.needs_lock = cmd_install.needs_lock = cmd_sandbox.needs_lock = True  # type: ignore[attr-defined]
cmd_tui.owns_terminal = True  # type: ignore[attr-defined]


def cmd_tpm(args: argparse.Namespace) -> int:
    from .cli_tpm import cmd_tpm  # lazy: it loads the command runner (subprocess); `check` has no use for it

    return cmd_tpm(args)


def cmd_schema(args: argparse.Namespace) -> int:
    import json

    from .answers import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


# ---------------------------------------------------------------------------------------------- parsers


def _common_options(sandbox: str) -> argparse.ArgumentParser:
    """Options accepted both before and after the sub-command.

    Their defaults are filled in after parsing (:func:`parse`): argparse shares these action objects
    between the main parser and the sub-parsers, so a default set on one would overwrite a value given
    to the other.
    """
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--log", type=Path, metavar="PATH",
                        help=f"log file, emptied for each run (default {LOG_DIR}/COMMAND.log)")
    common.add_argument("--json-progress", action="store_true", default=argparse.SUPPRESS,
                        help="print progress as JSON lines instead of text")
    common.add_argument("--sandbox", action="store_true", default=argparse.SUPPRESS,
                        help=sandbox)
    common.add_argument("--answers", type=Path, metavar="FILE", help="answer file (TOML)")
    common.add_argument("--sandbox-dir", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    return common


def build_install_parser() -> argparse.ArgumentParser:
    common = _common_options("target the safe sandbox disk image instead of a real disk")
    parser = argparse.ArgumentParser(
        prog="phyllome-install",
        description="Install Phyllome OS. Without a sub-command, opens the installer's text interface.",
        parents=[common],
    )
    parser.set_defaults(handler=cmd_tui)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(title="sub-commands", metavar="COMMAND")

    p = sub.add_parser("tui", parents=[common], help="the interactive installer (the default)")
    p.set_defaults(handler=cmd_tui)

    p = sub.add_parser("validate", parents=[common], help="check an answer file without touching anything")
    p.add_argument("file", type=Path, help="the answer file")
    p.add_argument("--machine", type=Path, metavar="PROFILE.json",
                   help="also check the storage target against a saved machine profile")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("schema", parents=[common], help="print the answer file's JSON Schema")
    p.set_defaults(handler=cmd_schema)

    p = sub.add_parser("install", parents=[common], help="unattended install from an answer file")
    p.add_argument("--dry-run", action="store_true", help="print the plan; touch nothing")
    p.add_argument("--target-image", type=Path, metavar="PATH",
                   help="install into this disk image file (through a loop device), e.g. for a VM or a "
                        "pre-installed image; naming it is the consent to overwrite it")
    p.add_argument("--image-size", metavar="SIZE", help="create the image with this size (e.g. 20GiB) when missing")
    p.set_defaults(handler=cmd_install)

    p = sub.add_parser("probe", parents=[common], help="list the disks and the machine profile")
    p.add_argument("--json", action="store_true", help="print the machine profile as JSON")
    p.add_argument("--include-loop", action="store_true", help="treat loop devices as disks")
    p.set_defaults(handler=cmd_probe)

    p = sub.add_parser("sandbox", parents=[common], help="manage the sandbox disk image")
    p.add_argument("action", choices=["clean"], help="clean: detach and remove the sandbox")
    p.set_defaults(handler=cmd_sandbox)
    return parser


def build_firstboot_parser() -> argparse.ArgumentParser:
    common = _common_options("a safe sandbox: a saved machine tree, an encrypted VM store in a loop image, "
                             "libvirt without a daemon; nothing of this machine is changed")
    parser = argparse.ArgumentParser(
        prog="phyllome-firstboot",
        description="First boot of Phyllome OS: hardware checks, then the primary virtual machine.",
        parents=[common],
    )
    parser.set_defaults(handler=cmd_screens)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(title="sub-commands", metavar="COMMAND")
    p = sub.add_parser("check", parents=[common], help="hardware checks and the GPU strategy")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--root", type=Path, default=Path("/"), metavar="DIR",
                   help="read /proc, /sys and /dev under DIR (a saved machine tree)")
    p.add_argument("--guest", choices=["windows", "linux"], default="windows",
                   help="the guest family to rank GPU strategies for")
    p.add_argument("--save", type=Path, metavar="PATH",
                   help="where to save the result (default: /var/lib/phyllome/hardware.json on the live system)")
    p.set_defaults(handler=cmd_check)

    vm = sub.add_parser("vm", parents=[common], help="the primary VM: OS list, plan, create")
    vm.set_defaults(handler=_not_built("phyllome-firstboot vm without a sub-command"))
    vm_sub = vm.add_subparsers(title="vm commands", metavar="COMMAND")
    p = vm_sub.add_parser("os-list", parents=[common], help="the guest OSes osinfo-db knows")
    p.add_argument("--json", action="store_true", help="print them as JSON")
    p.set_defaults(handler=cmd_vm_os_list)
    for name, text in (("plan", "print the VM that would be created, and where each value comes from"),
                       ("create", "dry run, then define the VM with autostart")):
        p = vm_sub.add_parser(name, parents=[common], help=text)
        _vm_options(p)
        if name == "plan":
            p.add_argument("--xml", action="store_true", help="print the libvirt domain XML")
            p.add_argument("--json", action="store_true", help="print the spec as JSON")
            p.set_defaults(handler=cmd_vm_plan)
        else:
            p.add_argument("--dry-run", action="store_true",
                           help="stop after the define / start paused / destroy / undefine check")
            p.add_argument("--start", action="store_true", help="start the VM once it is defined")
            p.set_defaults(handler=interruptible(cmd_vm_create))

    p = sub.add_parser("tui", parents=[common], help="the first-boot screens (the default)")
    add_machine_options(p)
    p.set_defaults(handler=cmd_screens)

    p = sub.add_parser("unlock", parents=[common], help="unlock the encrypted VM store (at every boot)")
    p.add_argument("--store", type=Path, default=Path(VM_STORE), metavar="DIR",
                   help=f"the encrypted VM store (default {VM_STORE})")
    p.add_argument("--root", type=Path, default=Path("/"), metavar="DIR",
                   help="the system whose /etc/fscrypt.conf is used (default /)")
    p.add_argument("--mountpoint", type=Path, metavar="DIR",
                   help="where the store's filesystem is mounted whole (default: found in /proc/self/mountinfo)")
    p.add_argument("--ask-password", action=argparse.BooleanOptionalAction, default=None,
                   help="ask through systemd-ask-password (default: when systemd runs this, $INVOCATION_ID)")
    p.add_argument("--tries", type=positive_arg, default=3, metavar="N",
                   help="wrong tries before giving up (default 3)")
    p.set_defaults(handler=cmd_unlock)

    p = sub.add_parser("tpm", parents=[common], help="the TPM 2.0 unlocking the VM store: status, enrol, remove")
    p.add_argument("action", nargs="?", choices=["status", "enrol", "remove"], default="status")
    add_machine_options(p)
    p.set_defaults(handler=cmd_tpm)

    p = sub.add_parser("run", parents=[common], help="the whole first boot (the unit runs this)")
    p.add_argument("--unattended", action="store_true",
                   help="no screens: every answer from [firstboot] (--answers FILE, else /etc/phyllome/firstboot.toml)")
    add_machine_options(p)
    p.set_defaults(handler=interruptible(cmd_run))
    return parser


def _vm_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--iso", type=Path, metavar="PATH", help="the installation ISO (the OS is detected from it)")
    p.add_argument("--os", metavar="SHORTID", help="the guest OS as an osinfo short id (vm os-list)")
    p.add_argument("--name", default="desktop", help="the VM's name (default desktop)")
    p.add_argument("--memory", type=size_arg, metavar="SIZE", help="guest memory, e.g. 8GiB")
    p.add_argument("--cpus", type=int, metavar="N", help="virtual CPUs")
    p.add_argument("--disk-size", type=size_arg, metavar="SIZE", help="the guest disk's size, e.g. 128GiB")
    p.add_argument("--disk-format", choices=["qcow2", "raw"], default="qcow2", help="the guest disk's format")
    p.add_argument("--gpu", choices=GPU_REQUESTS,
                   default="auto", help="graphics strategy (default: the checks' recommendation)")
    p.add_argument("--gpu-address", metavar="PCI", help="the host GPU to use where there are several, as "
                   "'phyllome-firstboot check' or lspci -D names it (e.g. 0000:01:00.0)")
    p.add_argument("--vmm", choices=VMMS, default="qemu", help="virtual machine monitor")
    p.add_argument("--tpm", action=argparse.BooleanOptionalAction, default=None,
                   help="emulated TPM 2.0 (default: where the OS needs one)")
    p.add_argument("--serial-log", type=Path, metavar="PATH", help=argparse.SUPPRESS)
    p.add_argument("--store", type=Path, default=Path(VM_STORE), metavar="DIR",
                   help=f"the encrypted VM store (default {VM_STORE})")
    p.add_argument("--root", type=Path, default=Path("/"), metavar="DIR",
                   help="read /sys (GPUs) and the first-boot marker under DIR")
    p.add_argument("--uri", default="qemu:///system", help="libvirt connection URI (default qemu:///system)")


def install_main(argv: Sequence[str] | None = None) -> int:
    return run(build_install_parser(), argv)


def firstboot_main(argv: Sequence[str] | None = None) -> int:
    return run(build_firstboot_parser(), argv)


if __name__ == "__main__":
    sys.exit(install_main())
