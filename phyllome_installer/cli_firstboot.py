"""``phyllome-firstboot`` without a sub-command, ``run`` and ``unlock``: wired here, called from :mod:`.cli`.

Where the first boot's answers come from: ``--answers FILE`` (a whole answer file, or only its ``[firstboot]``),
else ``/etc/phyllome/firstboot.toml``, which the installer saves into the target. ``[firstboot] unattended =
true`` (or ``run --unattended``) creates the VM without screens; otherwise the screens open, prefilled.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import stat
import sys
from pathlib import Path

from .cli_run import require_terminal
from .core.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, InstallFailure, PhyllomeError, UserError
from .core.facts import VM_STORE
from .core.files import BoundedReadError, check_writable_target, file_kind

log = logging.getLogger("phyllome.firstboot")


def iso_file(path: str | Path | None, name: str = "--iso") -> str | None:
    """The installation ISO as an absolute path (``..`` resolved, so a relative path works), refused unless it is
    a regular file: a directory, a FIFO (which would block), /dev/null or another device is not an ISO."""
    if path is None:
        return None
    absolute = os.path.abspath(path)
    try:
        mode = os.stat(absolute).st_mode
    except OSError as exc:
        raise UserError(f"{name} {path}: {exc.strerror.lower() if exc.strerror else exc}") from None
    if not stat.S_ISREG(mode):
        raise UserError(f"{name} {path}: {file_kind(mode)}, not an ISO file")
    return absolute


def store_dir(path: str | Path) -> str:
    """The VM store as an absolute path; refused when it exists and is not a directory (plan and create alike)."""
    absolute = os.path.abspath(path)
    if os.path.lexists(absolute) and not os.path.isdir(absolute):
        raise UserError(f"--store {path}: not a directory")
    return absolute


def validated_request(fields: dict, where: str = ""):
    """The VM engine's validated request from these fields (None: the sizing rule chooses); each bad value is
    named ``where`` + its field (``firstboot.vm.memory``, or the CLI's option), and nothing is touched."""
    from pydantic import ValidationError

    from firstboot.vm import Request

    try:
        return Request(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise UserError("; ".join(f"{where}{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                  for e in exc.errors())) from exc


def vm_request(vm, store: Path):
    """[firstboot.vm] as the VM engine's request (sizes parsed)."""
    from .answers import parse_size

    fields = {"name": vm.name, "memory": parse_size(vm.memory) if vm.memory else None, "cpus": vm.vcpus,
              "disk_size": parse_size(vm.disk_size) if vm.disk_size else None, "disk_format": vm.disk_format,
              "gpu": vm.gpu, "gpu_address": vm.gpu_address, "vmm": vm.vmm, "tpm": vm.tpm,
              "iso": iso_file(vm.iso, "firstboot.vm.iso ="), "store": store_dir(store)}
    return validated_request(fields, "firstboot.vm.")


def _session(args: argparse.Namespace):
    from firstboot.session import Session

    from .core.runner import SubprocessRunner

    # Without a sub-command the machine options are not parsed: this machine, its libvirt, its VM store.
    return Session(SubprocessRunner(stop=args.stop), root=getattr(args, "root", Path("/")),
                   uri=getattr(args, "uri", "qemu:///system"),
                   store=getattr(args, "store", Path(VM_STORE)))


def refuse_sandbox(args: argparse.Namespace, what: str) -> None:
    """--sandbox is the screens' (firstboot/sandbox.py): a command that would change this machine refuses it."""
    if getattr(args, "sandbox", False):
        raise UserError(f"{what} has no sandbox: run phyllome-firstboot --sandbox (the screens) to try the first "
                        "boot safely")


def run_unattended(session, config, result, out=print) -> None:
    """The checks, then the VM from ``config.vm``: each step recorded in ``result`` (a failure stops)."""
    step = "checks"
    try:
        checks = session.checks()
        for check in checks:
            out(check.line())
        counts = {s: sum(c.status == s for c in checks) for s in ("PASS", "WARN", "FAIL", "NOTE")}
        result.add("checks", ", ".join(f"{n} {s}" for s, n in counts.items()))
        if not config.enabled or config.vm is None:
            result.add("vm", "no VM created ([firstboot] enabled = false, or no [firstboot.vm])")
            return
        step = "plan"
        vm = config.vm
        planned = session.plan(vm_request(vm, session.store), vm.os)
        for note in planned.spec.notes:
            out(f"note: {note}")
        result.add("plan", f"{planned.spec.name}: {planned.spec.os}, {planned.spec.memory >> 20} MiB, "
                           f"{planned.spec.vcpus} vCPUs, {planned.spec.gpu.strategy}")
        step = "vm"
        from firstboot.libvirt_backend import VmExists

        try:
            created = session.create(planned, dry_run=False, start=vm.start,
                                     on_step=lambda s: out(f"{vm.name}: {s}"))
        except VmExists:  # an earlier first boot created it and stopped before removing the marker
            result.vm = {"name": planned.spec.name, "uri": session.uri, "autostart": True, "started": False}
            result.add("vm", f"{planned.spec.name} exists already (an earlier first boot created it); "
                             "nothing to create")
            out(result.steps[-1].detail)
            return
        for line in created.steps:
            out(f"{planned.spec.name}: {line}")
        result.vm = {"name": planned.spec.name, "uri": session.uri, "autostart": True, "started": vm.start}
        result.add("vm", f"{planned.spec.name} defined with autostart" + (" and started" if vm.start else ""))
        out(result.steps[-1].detail)
    except PhyllomeError as exc:
        result.fail(step, str(exc))
    except Exception as exc:  # a bug: the result still says where the first boot stopped, and the marker stays
        log.debug("internal error in step %s", step, exc_info=True)
        result.fail(step, f"internal error: {type(exc).__name__}: {exc} (the traceback is in the log)")


def cmd_run(args: argparse.Namespace) -> int:
    """``run``: unattended when asked (or when [firstboot] says so), else the first-boot screens."""
    from firstboot.session import Result, finish
    from firstboot.state import not_a_host

    from .answers import load_firstboot  # pydantic: only the commands that read [firstboot] load it

    refuse_sandbox(args, "run")
    problem = not_a_host(args.root)
    if problem is not None:  # nothing is written on a machine this first boot is not for
        raise UserError(f"run: {problem}; nothing was done")
    config = load_firstboot(args.answers, args.root)
    if not (args.unattended or config.unattended):
        code = cmd_screens(args, config)
        _report(args.root, code == 0, "the first-boot screens " + ("finished" if code == 0 else f"ended ({code})"))
        return code
    result = Result("unattended", log=str(args.log))
    run_unattended(_session(args), config, result)
    _report(args.root, result.ok, "done" if result.ok else f"step {result.failed_step}: {result.error}")
    try:
        removed = finish(result, args.root)
    except OSError as exc:
        raise InstallFailure(f"cannot record the first boot's result under {args.root}: "
                             f"{exc.strerror or exc}; the first-boot marker is kept") from None
    if result.ok:
        print("first boot done" + ("; the first-boot marker is removed" if removed else ""))
        return 0
    print(f"first boot failed in step {result.failed_step}: {result.error}\n  the first-boot marker is kept; "
          f"the log is {args.log}", file=sys.stderr)
    return EXIT_FAILED


def _report(root: Path, ok: bool, detail: str) -> None:
    """The first boot's result as a ``firstboot-result`` event, where the install's went (events.py); never fails."""
    from .events import report_firstboot

    try:
        report_firstboot(root, ok, detail)
    except Exception:  # a report is never a reason for the first boot to fail
        log.debug("the first boot's result was not reported", exc_info=True)


def cmd_screens(args: argparse.Namespace, config=None) -> int:
    """``phyllome-firstboot``: the first-boot screens on this terminal."""
    from .answers import load_firstboot

    require_terminal("run it on a console, or unattended with `phyllome-firstboot run --unattended`")

    if getattr(args, "sandbox", False):  # nothing of this machine changes (firstboot/sandbox.py)
        from firstboot.sandbox import BASE, sandbox_session

        from .core.runner import SubprocessRunner
        from .sandbox import attached_image

        session = sandbox_session(SubprocessRunner(stop=args.stop), args.sandbox_dir or BASE,
                                  attach=functools.partial(attached_image, stop=args.stop))
        with contextlib.closing(session):  # the store locked, unmounted and detached, whatever happens
            _say_the_secrets(session)
            return _screens(session, load_firstboot(args.answers, session.root), args)
    session = _session(args)
    if config is None:
        config = load_firstboot(args.answers, getattr(args, "root", Path("/")))
    return _screens(session, config, args)


def _screens(session, config, args: argparse.Namespace) -> int:
    from screens.firstboot.app import create_firstboot_app  # lazy: the only path that loads textual

    app = create_firstboot_app(session, config, log_path=args.log)
    with _screen_owns_the_terminal():
        app.run()
    return app.return_code or 0


def _say_the_secrets(session, stdin=None) -> None:
    """The sandbox store's passphrase and recovery code, once, on the terminal only (never the log); the screens
    open when the person presses Enter (at once when stdin is not a terminal)."""
    print(f"The sandbox's VM store is encrypted and locked, as on an installed host.\n"
          f"  passphrase:    {session.passphrase}\n  recovery code: {session.recovery_code}\n"
          "Either one unlocks it on the first screen; they are shown only here, and change at every run.",
          flush=True)
    stdin = stdin or sys.stdin
    if stdin is not None and not stdin.closed and stdin.isatty():
        with contextlib.suppress(EOFError):
            input("Press Enter to open the first-boot screens. ")


@contextlib.contextmanager
def _screen_owns_the_terminal():
    """While the screens run, log records go to the log file only: console lines would draw over the screens."""
    from .core.logs import LOGGER_NAME, SinkHandler

    logger = logging.getLogger(LOGGER_NAME)
    console = [h for h in logger.handlers if isinstance(h, SinkHandler)]
    for handler in console:
        logger.removeHandler(handler)
    try:
        yield
    finally:
        for handler in console:
            logger.addHandler(handler)


def cmd_unlock(args: argparse.Namespace) -> int:
    """``unlock``: the VM store at every boot; three tries, then the boot goes on with the VMs unavailable."""
    from firstboot.unlock import LOCKED_MESSAGE, Unlocker, ask_on_terminal, ask_with_systemd, run_by_systemd

    from .cli_tpm import enrol_if_wanted, tpm_for, unlock_first
    from .core.interrupt import Interrupted, signals_stop
    from .core.runner import SubprocessRunner

    refuse_sandbox(args, "unlock")
    use_agent = args.ask_password if args.ask_password is not None else run_by_systemd()
    # Asking through systemd-ask-password, a signal (systemd stopping the unit) ends the prompt with this command:
    # the runner terminates the agent's process group instead of leaving it orphaned on the console. A terminal
    # prompt (getpass) has no child, and keeps the signal's default: it ends this command at once.
    stop = getattr(args, "stop", None) if use_agent else None
    runner = SubprocessRunner(stop=stop)
    ask = ask_with_systemd(runner) if use_agent else ask_on_terminal()
    unlocker = Unlocker(runner, store=args.store, root=args.root, mountpoint=args.mountpoint)
    tell = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    try:
        with signals_stop(stop) if stop is not None else contextlib.nullcontext():
            tpm = tpm_for(runner, unlocker, args.root)  # the TPM first, when a key was sealed (cli_tpm.py)
            outcome = unlock_first(unlocker, tpm, tell) or unlocker.run(ask, tell, tries=args.tries)
            if outcome.state == "unlocked":
                enrol_if_wanted(args.root, unlocker, tpm, tell)
    except Interrupted:
        print(f"interrupted ({stop.reason if stop else 'stop'}). {LOCKED_MESSAGE}", file=sys.stderr)
        return EXIT_INTERRUPTED
    log.info("unlock: %s after %d tries", outcome.state, outcome.tries)
    print(outcome.message, file=sys.stderr if not outcome.ok else sys.stdout)
    return 0 if outcome.ok else EXIT_FAILED


def add_machine_options(p: argparse.ArgumentParser) -> None:
    """The first boot's machine: its root, the VM store, libvirt."""
    p.add_argument("--store", type=Path, default=Path(VM_STORE), metavar="DIR",
                   help=f"the encrypted VM store (default {VM_STORE})")
    p.add_argument("--root", type=Path, default=Path("/"), metavar="DIR",
                   help="read /sys, the ISOs, the saved [firstboot] and the first-boot marker under DIR")
    p.add_argument("--uri", default="qemu:///system", help="libvirt connection URI (default qemu:///system)")


# ---------------------------------------------------------------------------------------------- check and vm


def cmd_check(args: argparse.Namespace) -> int:
    import json

    from firstboot.checks import Machine, run_checks
    from firstboot.gpu import analyse
    from firstboot.state import PROFILE, save_profile

    if not args.root.is_dir():
        raise UserError(f"--root {args.root}: no such directory (a saved machine tree, or / for this machine)")
    if args.save is not None:
        try:
            check_writable_target(args.save)  # before anything runs; written like the install log
        except BoundedReadError as exc:
            raise UserError(f"--save {exc}") from None
    machine = Machine(args.root)
    checks = run_checks(machine)
    gpus = analyse(machine, args.guest)
    result = {"guest": args.guest, "checks": [c.to_dict() for c in checks], "gpus": [g.to_dict() for g in gpus]}
    save = args.save if args.save is not None else (Path("/") / PROFILE if machine.live else None)
    refused = None
    if save is not None:
        try:
            save_profile(result, save)
        except OSError as exc:
            refused = f"cannot save {save}: {exc.strerror or exc}"
            print(f"phyllome-firstboot: {'error' if args.save else 'warning'}: {refused}", file=sys.stderr)
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
    if refused and args.save is not None:
        return EXIT_BAD_INPUT
    return 1 if any(c.status == "FAIL" for c in checks) else 0


def positive_arg(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def size_arg(text: str) -> int:
    from .answers import parse_size

    try:
        size = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if size <= 0:
        raise argparse.ArgumentTypeError("a size must be greater than zero")
    return size


def _vm_request(args: argparse.Namespace, **values):
    """The user's VM choices as a validated request (bad values: exit 2, nothing touched)."""
    fields = {"name": args.name, "memory": args.memory, "cpus": args.cpus, "disk_size": args.disk_size,
              "disk_format": args.disk_format, "gpu": args.gpu, "gpu_address": args.gpu_address, "vmm": args.vmm,
              "tpm": args.tpm, "iso": iso_file(args.iso), "store": store_dir(args.store),
              "serial_log": os.path.abspath(args.serial_log) if args.serial_log else None}
    return validated_request(fields | values)


def _vm_planned(args: argparse.Namespace, request):
    from firstboot.checks import Machine
    from firstboot.osinfo import Catalogue
    from firstboot.primary import build, host_facts, profile_for

    catalogue = Catalogue()
    profile_for(catalogue, args.os, request.iso)  # bad input is reported before libvirt is asked anything
    return build(request, args.os, catalogue=catalogue, host=host_facts(args.uri, args.root),
                 machine=Machine(args.root))


def cmd_vm_os_list(args: argparse.Namespace) -> int:
    import json

    from firstboot.osinfo import Catalogue

    entries = Catalogue().entries()
    if args.json:
        print(json.dumps(entries, indent=2))
    else:
        for e in entries:
            print(f"{e['short_id']:<24} {e['family']:<8} {e['release'] or '-':<10} {e['name']}")
    return 0


def cmd_vm_plan(args: argparse.Namespace) -> int:
    planned = _vm_planned(args, _vm_request(args))
    print(planned.xml() if args.xml else planned.to_json() if args.json else planned.render(), end="")
    if args.json:
        print()
    return 0


def _vm_create(args: argparse.Namespace, planned, *, dry_run: bool, start: bool) -> int:
    from firstboot.primary import create

    from .core.runner import SubprocessRunner

    for note in planned.spec.notes:
        print(f"note: {note}", file=sys.stderr)
    result = create(planned, args.uri, SubprocessRunner(), dry_run=dry_run, start=start, root=args.root)
    for step in result.steps:
        print(f"{planned.spec.name}: {step}")
    print(f"{planned.spec.name}: " + ("the dry run passed; nothing was created" if dry_run else
                                      "defined with autostart" + (" and started" if start else "")))
    return 0


def cmd_vm_create(args: argparse.Namespace) -> int:
    refuse_sandbox(args, "vm create")
    return _vm_create(args, _vm_planned(args, _vm_request(args)), dry_run=args.dry_run, start=args.start)
