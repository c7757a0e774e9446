"""Whether KVM really runs a guest on this machine, and whether it can give the guest SMM (Secure Boot needs it).

A device node proves nothing, nor does a paused domain: on some nested hosts /dev/kvm opens, ``KVM_CREATE_VM``
works and libvirt starts a domain paused, yet QEMU aborts as soon as it sets the vCPU's MSRs, refuses SMM ("System
Management Mode not supported by this hypervisor"), or its vCPU never leaves real mode. So the probe runs a guest:
a 64 KiB firmware (built below, byte by byte) that switches to 32-bit protected mode, writes and reads back a word
of RAM and reports through QEMU's ``isa-debug-exit`` port, with the CPU model and machine the primary VM uses
(host-passthrough, q35, SMM on for Secure Boot). A guest that reports within the deadline proves KVM; anything
else is a reason, in words. The same verdict drives the hardware checks and the VM's domain type, so they agree.

The verdict is kept for the boot (:func:`probe_once`): once per process in memory, and in ``/run/phyllome`` (a
tmpfs, gone at the next boot) keyed by the boot's id and by what the verdict depends on, the emulator and the device
node, so ``check`` and the first boot do not each start QEMU again. A module reloaded with other options recreates
the node, an upgraded QEMU changes its file: either is a new key, probed again.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from phyllome_installer.core.files import BoundedReadError, read_bounded, write_regular

if TYPE_CHECKING:
    from phyllome_installer.core.runner import Runner

DEADLINE = 5.0
"""A real vCPU runs the firmware in milliseconds; a vCPU that cannot run hangs until this."""
_REPORTED = (0x2A << 1) | 1
"""QEMU's exit status when the guest writes 0x2a to isa-debug-exit: ``(value << 1) | 1``."""
_SMM_REFUSED = "System Management Mode not supported"


def firmware() -> bytes:
    """The probe guest: reset vector -> protected mode -> RAM write/read -> ``out 0xf4`` (0x2a ok, 0x15 not)."""
    rom = bytearray(b"\xf4" * 0x10000)  # hlt everywhere else
    code = {
        # 16-bit, CS base 0xffff0000: cli; o32 lgdt [cs:0xa0]; cr0.PE = 1; jmp far dword 0x08:0xffff0020
        0x00: "fa 2e 66 0f 01 16 a0 00 0f 20 c0 0c 01 0f 22 c0 66 ea 20 00 ff ff 08 00",
        # 32-bit: ds = ss = 0x10; [0x1000] = 0x12345678; read back; compare; out 0x2a (or 0x15); hlt
        0x20: "66 b8 10 00 8e d8 8e d0 c7 05 00 10 00 00 78 56 34 12 a1 00 10 00 00 3d 78 56 34 12 75 05"
              " b0 2a e6 f4 f4 b0 15 e6 f4 f4",
        # the GDT: null, flat 4 GiB code (0x08), flat 4 GiB data (0x10); its pointer (limit 23, base 0xffff0080)
        0x80: "0000000000000000 ffff0000009acf00 ffff00000092cf00",
        0xA0: "1700 8000ffff",
        0xFFF0: "e9 0d 00",  # the reset vector: jmp near 0x0000
    }
    for offset, text in code.items():
        data = bytes.fromhex(text.replace(" ", ""))
        rom[offset:offset + len(data)] = data
    return bytes(rom)


@dataclass(frozen=True)
class Verdict:
    runs: bool
    """A guest ran under the accelerator (protected mode, RAM) and reported back."""
    smm: bool
    """It also ran with SMM on (what Secure Boot firmware needs)."""
    reason: str = ""
    """Why not, in words (empty when both hold)."""
    lasting: bool = True
    """The answer holds for the boot. False for a guest that did not report within the deadline: on a busy machine
    that can be chance, so it is asked again next time, never kept (a VM defined as TCG stays slow for good)."""

    def to_dict(self) -> dict:
        return {"runs": self.runs, "smm": self.smm, "reason": self.reason}


def _run(runner: Runner, emulator: str, image: Path, *, accel: str, cpu: str, smm: bool,
         timeout: float) -> Verdict:
    """One run of the probe guest: it ran (with ``smm`` as asked), or why not; a guest that did not report in
    time is a verdict that does not last."""
    argv = [emulator, "-accel", accel, "-cpu", cpu, "-machine", f"q35,smm={'on' if smm else 'off'}", "-m", "16",
            "-nodefaults", "-display", "none", "-no-reboot", "-bios", str(image),
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x01"]
    result = runner.run(argv, check=False, timeout=timeout)
    if result.returncode == _REPORTED:
        return Verdict(True, smm)
    if result.returncode == 124:
        return Verdict(False, False, f"a test guest did not run within {timeout:g} s under {accel} (its vCPU never "
                                     "ran)", lasting=False)
    lines = [line.strip() for line in result.stderr.splitlines()
             if line.strip() and "warning:" not in line and not line.startswith("timed out")]
    detail = lines[0] if lines else f"exit status {result.returncode}"
    return Verdict(False, False, f"a test guest failed under {accel}: {detail.removeprefix(emulator + ': ')}")


def probe(runner: Runner, *, emulator: str = "qemu-system-x86_64", dev: Path = Path("/dev/kvm"),
          accel: str = "kvm", cpu: str = "host", timeout: float = DEADLINE) -> Verdict:
    """Run the probe guest under ``accel``: first with SMM, then (when SMM alone was refused) without."""
    if accel == "kvm":
        if not dev.exists():
            return Verdict(False, False, f"{dev} is missing")
        try:
            dev.open("rb+").close()
        except OSError as exc:
            return Verdict(False, False, f"cannot open {dev}: {exc.strerror}")
    import tempfile  # only when a guest runs: a kept verdict (check, every boot but the first) needs none

    with tempfile.TemporaryDirectory(prefix="phyllome-kvm-") as tmp:
        image = Path(tmp) / "probe.rom"
        image.write_bytes(firmware())
        with_smm = _run(runner, emulator, image, accel=accel, cpu=cpu, smm=True, timeout=timeout)
        if with_smm.runs or _SMM_REFUSED not in with_smm.reason:
            return with_smm
        plain = _run(runner, emulator, image, accel=accel, cpu=cpu, smm=False, timeout=timeout)
        if plain.runs:
            return Verdict(True, False, f"{accel} runs guests but cannot give them SMM, which Secure Boot needs")
        return plain


_verdicts: dict[tuple, Verdict] = {}

#: Where the boot's verdicts are kept (a tmpfs: a new boot probes again).
CACHE = Path("/run/phyllome/kvm-verdicts.json")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_CACHE_CAP = 16 << 10
_CACHE_ENTRIES = 8


def _identity(path: str | Path) -> list | None:
    """What tells one file from its replacement: device, inode, change time, size (None when it is missing)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_dev, info.st_ino, info.st_ctime_ns, info.st_size]


def arguments(kwargs: dict) -> dict[str, str]:
    """The probe's arguments in full (defaults filled in, the emulator as the file it runs), so that the checks
    (which name only the device) and the VM plan (which names the emulator libvirt reports) ask the same."""
    import shutil  # not at the top: it loads zlib, bz2 and lzma, which a check of a saved tree does without

    full = {name: str(value.default) for name, value in inspect.signature(probe).parameters.items()
            if value.default is not inspect.Parameter.empty}
    full |= {name: str(value) for name, value in kwargs.items()}
    emulator = full["emulator"]
    full["emulator"] = os.path.realpath(emulator if "/" in emulator else shutil.which(emulator) or emulator)
    return full


def cache_key(full: dict[str, str], boot_id: Path = BOOT_ID) -> str | None:
    """The verdict's key for this boot: the boot's id, the probe's arguments in full (:func:`arguments`), the
    emulator's file and the device node as they are now. None when the boot has no readable id (nothing is kept
    then)."""
    try:
        boot = read_bounded(boot_id, 64).decode("ascii").strip()
    except (BoundedReadError, UnicodeDecodeError):
        return None
    return json.dumps([boot, sorted(full.items()), _identity(full["emulator"]), _identity(full["dev"])])


def _kept(cache: Path) -> dict:
    """The kept verdicts, when the file and its folder are this user's and writable by no one else; else none."""
    try:
        folder, info = os.lstat(cache.parent), os.lstat(cache)
        if not stat.S_ISREG(info.st_mode) or any(i.st_uid != os.geteuid() or i.st_mode & 0o022 for i in (folder, info)):
            return {}
        kept = json.loads(read_bounded(cache, _CACHE_CAP, follow_symlinks=False))
    except (OSError, ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python goes
        return {}
    return kept if isinstance(kept, dict) else {}


def _boot_of(key: str) -> str | None:
    """The boot id a kept key was made in (None for anything that is not one of our keys)."""
    with contextlib.suppress(ValueError, RecursionError):
        parsed = json.loads(key)
        if isinstance(parsed, list) and parsed and isinstance(parsed[0], str):
            return parsed[0]
    return None


def _verdict(value) -> Verdict | None:
    if isinstance(value, dict) and isinstance(value.get("runs"), bool) and isinstance(value.get("smm"), bool) \
            and isinstance(value.get("reason"), str) and len(value["reason"]) < 1000:
        return Verdict(value["runs"], value["smm"], value["reason"])
    return None


def probe_once(runner: Runner | None, *, cache: Path | None = CACHE, boot_id: Path = BOOT_ID, **kwargs) -> Verdict:
    """:func:`probe`, run once per boot for the same arguments: kept in this process, and in ``cache`` (None: in
    this process only) for the next process of the same boot (``check``, then the first boot, then ``vm plan``).
    ``runner`` None: a :class:`SubprocessRunner`, made only when the guest must run (a kept verdict loads no
    subprocess)."""
    full = arguments(kwargs)
    key = tuple(sorted(full.items()))
    if key in _verdicts:
        return _verdicts[key]
    boot_key = cache_key(full, boot_id) if cache is not None else None
    kept = _kept(cache) if boot_key is not None else {}
    verdict = _verdict(kept.get(boot_key)) if boot_key is not None else None
    if verdict is None:
        if runner is None:
            from phyllome_installer.core.runner import SubprocessRunner

            runner = SubprocessRunner()
        verdict = probe(runner, **kwargs)
        if not verdict.lasting:
            return verdict  # asked again next time, in this process too
        if boot_key is not None:
            boot = _boot_of(boot_key)
            current = {k: v for k, v in list(kept.items())[-_CACHE_ENTRIES:] if _boot_of(k) == boot}
            current[boot_key] = verdict.to_dict()
            with contextlib.suppress(OSError):  # not root, or /run read-only: kept in this process only
                cache.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                write_regular(cache, json.dumps(current).encode(), mode=0o644, durable=False)  # for this boot only
    _verdicts[key] = verdict
    return verdict
