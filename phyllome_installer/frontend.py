"""What a front end (the TUI, the CLI) asks of the installer: the machine, a plan, an install.

One implementation for a real machine and one for the sandbox, so that both front ends drive the same engine
the same way. Nothing here touches a disk except :meth:`Installer.install`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .core.errors import PhyllomeError, UserError
from .core.facts import VIRTUALIZATION_FLAGS
from .core.interrupt import Stop
from .core.runner import Runner
from .sandbox import DISK_SIZE, Sandbox, kernel_can_mount

if TYPE_CHECKING:  # the heavy modules are imported when used, after the TUI's first paint
    from storage.probe import Disk, MachineProfile

    from . import engine
    from .answers import InstallConfig
    from .bootanswers import Boot
    from .core.sinks import Sink
    from .discover import Discovery
    from .plan import InstallPlan

SANDBOX_SERIAL = "SANDBOX-0001"
#: What a front end puts in storage.disk for the sandbox: valid for the schema, replaced by the loop device.
SANDBOX_PLACEHOLDER = "/dev/phyllome-sandbox"


@dataclass
class Installer:
    runner: Runner
    log_path: Path | None = None
    sysroot: Path | None = None
    """Where the target is mounted; None: the plan's default."""
    sandbox: Sandbox | None = None
    proc: Path = Path("/proc")
    sys_root: Path = Path("/sys")
    unattended: bool = True
    """An answer file's front end: its `wipe` must name the disk. The TUI's consent is the typed confirmation."""
    notices: list[str] = field(default_factory=list)
    stop: Stop = field(default_factory=Stop)
    """Requested by a signal or the front end: the install stops at the next safe point and cleans up."""
    target_image: Path | None = None
    """Install into this disk image file (created sparse with ``image_size`` when missing) through a loop device
    attached for the install only, as bootc's ``install to-disk --via-loopback``: pre-installed and VM images."""
    image_size: str | None = None

    def __post_init__(self) -> None:
        if self.sandbox is not None and not kernel_can_mount("f2fs"):
            self.notices.append("This kernel cannot mount F2FS: the sandbox uses ext4 for the root filesystem.")

    # -------------------------------------------------------------------------------- the machine
    def machine(self) -> MachineProfile:
        """The probed machine. In the sandbox, the disk image is the only disk."""
        from storage.probe import MachineProfile, Prober

        prober = Prober(self.runner, proc_root=self.proc, sys_root=self.sys_root)
        if self.target_image is not None:
            return MachineProfile(cpu_vendor=prober.cpu_vendor(), firmware=prober.firmware(), ram_bytes=prober.ram(),
                                  disks=[self.image_disk()])
        if self.sandbox is None:
            return prober.profile()
        return MachineProfile(cpu_vendor=prober.cpu_vendor(), firmware=prober.firmware(), ram_bytes=prober.ram(),
                              disks=[self.sandbox_disk()])

    def sandbox_disk(self) -> Disk:
        """The sandbox's image as a disk, with what it holds (an earlier install): read from the file, read-only."""
        from storage.image import read_image
        from storage.probe import Disk

        assert self.sandbox is not None
        size = int(DISK_SIZE.rstrip("G")) << 30
        return Disk(path=str(self.sandbox.image), name="sandbox", model="Sandbox disk image", serial=SANDBOX_SERIAL,
                    size=size, transport="loop", **read_image(self.runner, str(self.sandbox.image)))

    def image_disk(self) -> Disk:
        """The ``--target-image`` file as the plan's disk (the loop device replaces it while installing)."""
        from storage.probe import Disk

        assert self.target_image is not None
        image = Path(self.target_image)
        size = image.stat().st_size if image.is_file() else image_bytes(self.image_size or "0")
        return Disk(path=str(image), name=image.name, model="Disk image", size=size, transport="loop")

    def check_image(self, config: InstallConfig) -> int:
        """What the real run refuses about ``--target-image`` before creating or writing anything (the dry run
        asks the same)."""
        from .image_target import check

        assert self.target_image is not None
        return check(Path(self.target_image), image_bytes(self.image_size) if self.image_size else None,
                     config.payload)

    def readiness(self) -> list[str]:
        return readiness(self.proc, self.sys_root)

    # -------------------------------------------------------------------------------- plan and install
    def _build(self, config: InstallConfig, machine: MachineProfile, device: str | None = None,
               sink: Sink | None = None, consent: str | None = None) -> InstallPlan:
        """The one way both plan() and install() build a plan; ``device``: the sandbox's attached loop device."""
        from .plan import build
        from .sandbox import for_image, for_sandbox

        if self.target_image is not None:  # naming the image file is the consent to write it
            return build(for_image(config, device or str(self.target_image)), machine, self.runner,
                         sysroot=self.sysroot, log_path=self.log_path, sink=sink, include_loop=True,
                         unattended=False, stop=self.stop)
        if self.sandbox is None:
            return build(config, machine, self.runner, sysroot=self.sysroot, log_path=self.log_path, sink=sink,
                         unattended=self.unattended, stop=self.stop, consent=consent)
        return build(for_sandbox(config, self.sandbox, device or str(self.sandbox.image)), machine, self.runner,
                     sysroot=self.sandbox.sysroot, sandbox=True, include_loop=True, log_path=self.log_path,
                     sink=sink, stop=self.stop)

    def plan(self, config: InstallConfig, machine: MachineProfile | None = None) -> InstallPlan:
        """The plan to show; touches nothing."""
        if self.target_image is not None:
            self.check_image(config)
        return self._build(config, machine or self.machine())

    def install(self, config: InstallConfig, sink: Sink | None = None, consent: str | None = None) -> engine.Result:
        """Install, between an install-started and an install-finished/failed event, also sent to the answer
        file's [report] url or phyllome.events= (events.py)."""
        from . import events, fleet
        from .core.files import read_text_bounded

        try:
            cmdline = read_text_bounded(self.proc / "cmdline", 64 * 1024, errors="replace")
        except OSError:
            cmdline = ""
        config = events.with_events_url(config, cmdline)
        return events.reported(config, sink, lambda out: self._install(config, out, consent), cmdline=cmdline,
                               who=fleet.identity(self.sys_root, self.proc), log_path=self.log_path)

    def _install(self, config: InstallConfig, sink: Sink | None = None, consent: str | None = None) -> engine.Result:
        """Install. ``consent``: the identity of the disk the user confirmed (``Disk.identity``): a path that
        names another disk by now is refused before anything is written (the sandbox's image needs none)."""
        from storage.probe import Prober

        from . import engine, leftovers
        from .core.sinks import NullSink
        from .plan import DEFAULT_SYSROOT

        sink = sink or NullSink()
        if self.target_image is not None:
            from .sandbox import attached_image

            size = self.check_image(config)
            with attached_image(self.runner, Path(self.target_image).resolve(), self.sysroot or DEFAULT_SYSROOT,
                                size, stop=self.stop, found=self.notices) as device:
                machine = Prober(self.runner, include_loop=True, only=[device]).profile()
                return engine.run(self._build(config, machine, device, sink))
        if self.sandbox is None:
            with self.stop.shielded():
                self.notices += leftovers.clean_mounts(self.runner, self.sysroot or DEFAULT_SYSROOT)
            machine = Prober(self.runner, proc_root=self.proc, sys_root=self.sys_root).profile()
            return engine.run(self._build(config, machine, sink=sink, consent=consent))
        with self.sandbox.attached(self.runner, stop=self.stop) as device:
            self.notices += self.sandbox.leftovers
            self.sandbox.ensure_payload(self.runner)
            machine = Prober(self.runner, include_loop=True, only=[device]).profile()
            return engine.run(self._build(config, machine, device, sink))


def image_bytes(size: str) -> int:
    """``--image-size`` in bytes: "20GiB" as in answer files, "20G" as truncate takes it, or plain bytes."""
    from .answers import parse_size

    size = size.strip()
    if size.isdigit():
        return int(size)
    try:
        return parse_size(size + "iB" if size[-1:].upper() in "KMGTP" else size)
    except ValueError as exc:
        raise UserError(f"--image-size: {exc}") from None


# ------------------------------------------------------------------------------------ helpers for the screens

COMMON_KEYMAPS = ("us", "uk", "de", "de-nodeadkeys", "fr", "fr-latin9", "be-latin1", "ch-fr", "ch-de", "es", "it",
                  "pt-latin1", "br-abnt2", "nl", "se-latin1", "no-latin1", "dk-latin1", "fi", "pl2", "cz-qwertz",
                  "hu", "ru", "jp106", "us-dvorak", "us-colemak")
KEYMAP_DIRS = (Path("/usr/lib/kbd/keymaps/xkb"), Path("/usr/share/keymaps/i386"), Path("/usr/lib/kbd/keymaps/legacy"))


def keymaps(dirs: tuple[Path, ...] = KEYMAP_DIRS) -> list[str]:
    """Console keymaps: the common ones first, then whatever this live system ships."""
    found: set[str] = set()
    for folder in dirs:
        if folder.is_dir():
            found.update(p.name.split(".")[0] for p in folder.rglob("*.map*"))
    return list(COMMON_KEYMAPS) + sorted(found - set(COMMON_KEYMAPS))


def readiness(proc: Path = Path("/proc"), sys_root: Path = Path("/sys")) -> list[str]:
    """Warnings about running VMs on this machine. Never a reason not to install."""
    warnings = []
    try:
        flags = set((proc / "cpuinfo").read_text().split())
    except OSError:
        flags = set()
    if not flags & VIRTUALIZATION_FLAGS:
        warnings.append("No hardware virtualization (VT-x/AMD-V) is visible: enable it in the firmware settings.")
    iommu = sys_root / "class" / "iommu"
    if not (iommu.is_dir() and any(iommu.iterdir())):
        warnings.append("No IOMMU is active (VT-d/AMD-Vi): GPU passthrough needs it enabled in the firmware.")
    return warnings


def confirmation_word(disk: Disk) -> tuple[str, str]:
    """What the user types to erase this disk, and how to ask for it."""
    if not disk.has_data:
        return "yes", "The disk looks empty. Type yes to install"
    if disk.serial:
        tail = disk.serial[-4:]
        return tail, f"Type the last four characters of its serial ({disk.serial}) to erase it"
    size = f"{disk.size / (1 << 30):.0f}"
    return size, f"It has no serial number: type its size in GiB ({size}) to erase it"


# ------------------------------------------------------------------------------------ the answer file at start

@dataclass(frozen=True)
class Discovered:
    """What discovery found when a front end starts, judged once for every front end.

    ``state``: "none" (interactive), "complete" (valid: show the plan and ask), "partial" (valid TOML whose only
    problems are missing answers: prefill, ask the rest) or "broken" (anything else, or a source that failed:
    ``problems`` are FILE:LINE:COL lines, or the discovery error)."""

    state: str
    source: str = ""
    data: bytes | None = field(default=None, repr=False)
    """The answer file's bytes, when one was found (kept in memory: never copied anywhere)."""
    problems: tuple[str, ...] = ()
    config: InstallConfig | None = None
    unattended: bool = False
    """Complete, with [storage] wipe consent, and the kernel argument phyllome.unattended=1: no questions."""


def discover_answers(discovery: Discovery, cli_path: Path | None = None, *, boot: Boot | None = None) -> Discovered:
    """The same discovery as ``phyllome-install install`` (bootanswers.find_answers: ``--answers``, what the
    initramfs found, the kernel arguments, the PHYLLOME-ANS partition), then the file judged for a front end."""
    from .answers import parse_bytes
    from .bootanswers import UNATTENDED_KARG, find_answers, kernel_flag, read_cmdline

    try:
        found = find_answers(discovery, cli_path, boot=boot)
    except UserError as exc:
        return Discovered("broken", problems=(str(exc),))
    if found is None:
        return Discovered("none")
    result = parse_bytes(found.data, found.name, unattended=False)
    if result.ok:
        unattended = kernel_flag(read_cmdline(discovery), UNATTENDED_KARG)
        strict = parse_bytes(found.data, found.name, unattended=True) if unattended else None
        if strict is not None and strict.ok:
            return Discovered("complete", found.source, found.data, config=strict.config, unattended=True)
        return Discovered("complete", found.source, found.data, config=result.config)
    problems = tuple(str(p) for p in result.problems)
    syntax = any(p.message.startswith("TOML syntax error") for p in result.problems)
    if not syntax and all(p.message.startswith("missing") for p in result.problems):
        return Discovered("partial", found.source, found.data, problems)
    return Discovered("broken", found.source, found.data, problems)


POST_WORDS = {"reboot": "reboot", "poweroff": "power off"}


def post_text(action: str, on_this_machine: bool) -> str:
    """What follows the install, in words (the dry run's last line)."""
    if not on_this_machine:
        return "nothing (the target is not this machine)"
    return "nothing ([post] action = \"none\")" if action not in POST_WORDS else f"systemctl {action}"


def after_install(runner: Runner, action: str) -> str | None:
    """``[post] action`` once the install succeeded and its recovery code was shown (so never a plan task: the
    machine would restart before the code is seen). None when it was started or there is none; else what to tell
    the person: the install itself succeeded, so a failing ``systemctl`` is never a failed install."""
    if action not in POST_WORDS:
        return None
    try:
        runner.run(["systemctl", action])
    except (PhyllomeError, OSError) as exc:
        reason = str(exc).splitlines()[0]
        return f"Phyllome OS is installed, but the {POST_WORDS[action]} failed ({reason}): {POST_WORDS[action]} by hand"
    return None
