"""``phyllome-install`` and ``phyllome-firstboot``: the composition root.

This is the only module that wires runners, sinks, logs and front ends together. Textual is imported lazily,
only when a TUI is asked for.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .core.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    NotAvailable,
    PhyllomeError,
    UserError,
)
from .core.logs import DEFAULT_LOG, setup_logging
from .core.progress import JsonLinesSink, Sink, TextSink
from .core.secrets import REDACTOR

log = logging.getLogger("phyllome.cli")

Handler = Callable[[argparse.Namespace], int]


def _not_built(feature: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        raise NotAvailable(f"{feature} is not available in this build yet")

    return handler


# ---------------------------------------------------------------------------------------------- handlers


def cmd_tui(args: argparse.Namespace) -> int:
    from screens.app import create_installer_app  # lazy: the only path that loads textual

    from .discover import Discovery

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
        from .machine import check_against_profile

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
    return Installer(SubprocessRunner(), log_path=args.log, sandbox=sandbox, unattended=unattended)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .core.runner import SubprocessRunner
    from .sandbox import BASE, Sandbox

    sandbox = Sandbox(args.sandbox_dir or BASE)
    sandbox.clean(SubprocessRunner())
    print(f"removed the sandbox in {sandbox.base}")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from .answers import load_config
    from .bootanswers import find_answers
    from .discover import Discovery

    installer = _installer(args)
    found = find_answers(Discovery(installer.runner), args.answers)
    if found is None:
        raise UserError("no answer file: give --answers FILE (or run phyllome-install for the interactive installer)")
    log.debug("answer file: %s", found.source)
    config = load_config(found.path)
    for notice in installer.notices:
        print(f"notice: {notice}", file=sys.stderr)
    if args.dry_run:
        print(installer.plan(config).render(), end="")
        return 0
    result = installer.install(config, _console_sink(args))
    if not result.ok:
        print(f"install failed in task {result.failed_task}: {result.error}\n  the log is {args.log}",
              file=sys.stderr)
        return result.exit_code or EXIT_FAILED
    # Shown once, on the console only: never logged.
    for directory, code in result.recovery_codes.items():
        print(f"Recovery code for {directory}: {code}\n  write it down now: it is shown only this once")
    print("Phyllome OS is installed.")
    if config.post.action != "none" and not args.sandbox:
        installer.runner.run(["systemctl", config.post.action])
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    import json

    from .answers import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    import json

    from firstboot.checks import Machine, run_checks
    from firstboot.gpu import analyse
    from firstboot.state import PROFILE, save_profile

    machine = Machine(args.root)
    checks = run_checks(machine)
    gpus = analyse(machine, args.guest)
    result = {"guest": args.guest, "checks": [c.to_dict() for c in checks], "gpus": [g.to_dict() for g in gpus]}
    save = args.save if args.save is not None else (Path("/") / PROFILE if machine.live else None)
    if save is not None:
        try:
            save_profile(result, save)
        except OSError as exc:
            print(f"phyllome-firstboot: warning: cannot save {save}: {exc.strerror}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for check in checks:
            print(check.line())
        for gpu in gpus:
            isolation = "isolated" if gpu.isolated else ("no IOMMU group" if gpu.iommu_group is None else
                                                         "NOT isolated: shares its group with "
                                                         + ", ".join(gpu.blockers))
            print(f"\nGPU {gpu.address}: {gpu.name} (driver {gpu.driver or 'none'}"
                  f"{', boot VGA' if gpu.boot_vga else ''}), {isolation}")
            for strategy in gpu.strategies:
                mark = f"{strategy.rank}." if strategy.available else " -"
                print(f"  {mark} {strategy.name:<14} {strategy.reason}")
        if not gpus:
            print("\nNo GPU found: guests get 2D virtio-gpu.")
    return 1 if any(c.status == "FAIL" for c in checks) else 0


# ---------------------------------------------------------------------------------------------- parsers


COMMON_DEFAULTS = {"log": None, "json_progress": False, "sandbox": False, "answers": None, "sandbox_dir": None}


def _common_options() -> argparse.ArgumentParser:
    """Options accepted both before and after the sub-command.

    Their defaults are filled in after parsing (:func:`parse`): argparse shares these action objects
    between the main parser and the sub-parsers, so a default set on one would overwrite a value given
    to the other.
    """
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--log", type=Path, metavar="PATH",
                        help=f"install log file (default {DEFAULT_LOG})")
    common.add_argument("--json-progress", action="store_true", default=argparse.SUPPRESS,
                        help="print progress as JSON lines instead of text")
    common.add_argument("--sandbox", action="store_true", default=argparse.SUPPRESS,
                        help="target the safe sandbox disk image instead of a real disk")
    common.add_argument("--answers", type=Path, metavar="FILE", help="answer file (TOML)")
    common.add_argument("--sandbox-dir", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    return common


def build_install_parser() -> argparse.ArgumentParser:
    common = _common_options()
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
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="phyllome-firstboot",
        description="First boot of Phyllome OS: hardware checks, then the primary virtual machine.",
        parents=[common],
    )
    parser.set_defaults(handler=_not_built("the first-boot interface"))
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
    return parser


# ---------------------------------------------------------------------------------------------- running


def _console_sink(args: argparse.Namespace) -> Sink | None:
    if args.handler is cmd_tui:
        return None  # the screen belongs to the TUI; the log file still gets everything
    return JsonLinesSink(sys.stdout) if args.json_progress else TextSink(sys.stderr)


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    for name, default in COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    return args


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parse(parser, argv)
    prog = parser.prog
    try:
        install_log = setup_logging(args.log, _console_sink(args))
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    args.log = install_log.path
    log.debug("%s %s: %s", prog, __version__, " ".join(sys.argv[1:] if argv is None else argv))
    try:
        return args.handler(args)
    except PhyllomeError as exc:
        log.debug("%s: %s", type(exc).__name__, exc)
        print(f"{prog}: error: {REDACTOR.redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: keep the traceback in the log, show the user where it is
        log.debug("internal error", exc_info=True)
        print(f"{prog}: internal error: {type(exc).__name__}: {REDACTOR.redact(str(exc))}\n"
              f"  the details are in {install_log.path}; please attach that file to a bug report",
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        install_log.close()


def install_main(argv: Sequence[str] | None = None) -> int:
    return run(build_install_parser(), argv)


def firstboot_main(argv: Sequence[str] | None = None) -> int:
    return run(build_firstboot_parser(), argv)


if __name__ == "__main__":
    sys.exit(install_main())
