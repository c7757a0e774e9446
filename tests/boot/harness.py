"""Boot a whole disk image under UEFI, as a machine would: QEMU (q35, TCG), OVMF, the serial console as the only
screen.

* firmware: OVMF_CODE_4M.fd (no Secure Boot, so an unsigned GRUB boots) read-only in pflash, and a writable copy of
  OVMF_VARS_4M.fd per machine (boot entries written by the firmware never leak between tests);
* the serial console (ttyS0): a UNIX socket chardev that this module connects to, so a test both reads everything
  (kept in memory and written to `serial.log`) and sends lines (`send_line`, e.g. to answer an unlock prompt);
* stages: `expect(regex, timeout, stage)` waits for the console to show something; on a timeout, or when QEMU
  ends first, `StageFailed` names the stage and carries the end of the serial console.

KVM is never used (it does not work on these machines, DESIGN.md section 4). TCG's `max` CPU offers AMD-V, and
`svm=off` leaves the guest's kernel without its virtio disk (seen: the root never appears), so the guests that
install or boot a Phyllome host keep their kernel from using it instead: GUEST_KERNEL_ARGS.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

GUEST_KERNEL_ARGS = '["console=ttyS0,115200", "module_blacklist=kvm_amd,kvm_intel"]'
"""The installed host's kernel arguments in the boot and iso tiers' answer files (TOML): the serial console, and no
KVM. With kvm_amd loaded, each first boot ran its KVM probe as a guest nested in TCG's emulated SVM, a guest that
never ran (each probe waited out its 5 s, three times a boot). In CI a first boot once made no progress for 900 s;
its log stayed in the guest, so the cause was not seen, and nested SVM under TCG was the one part of that boot
nothing else exercises: it was taken out. A host whose /dev/kvm cannot run a guest is tested on this machine
itself (tests/unit/test_kvm_probe.py)."""
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
OVMF_CODE_SB = Path("/usr/share/OVMF/OVMF_CODE_4M.ms.fd")
"""Secure Boot enforced, with Microsoft's keys enrolled in OVMF_VARS_4M.ms.fd (as on most PCs): shim, signed by
Microsoft's UEFI CA, boots; an unsigned GRUB is refused. Needs SMM, as real firmware with Secure Boot does."""
OVMF_VARS_SB = Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
TAIL = 4000
"""Characters of the serial console shown with a failed stage."""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")
"""Terminal escapes (systemd's colours, GRUB's cursor moves): kept in serial.log, removed from what stages match."""


class StageFailed(AssertionError):
    def __init__(self, stage: str, why: str, console: str) -> None:
        self.stage = stage
        self.why = why
        self.console = console
        super().__init__(f"boot stage '{stage}' failed: {why}\n--- end of the serial console ---\n"
                         f"{console[-TAIL:]}\n--- end ---")


class UefiMachine:
    """One QEMU process booting `disk` through OVMF. Use as a context manager: QEMU is always killed at the end."""

    def __init__(self, disk: Path, workdir: Path, *, memory_mib: int = 2048, cpus: int = 2, net: bool = False,
                 snapshot: bool = False, disk_format: str = "raw", extra: tuple[str, ...] = (),
                 secure_boot: bool = False, tpm_state: Path | None = None, bios: bool = False) -> None:
        """``tpm_state``: a TPM 2.0 (swtpm, tpm-crb) whose state lives in this directory: one machine's TPM across
        its boots (a firmware change between boots is what PCR 7 sees). ``bios``: a legacy PC instead (QEMU's
        SeaBIOS, no OVMF), for media that must boot there too."""
        assert not (bios and secure_boot)
        self.bios = bios
        self.disk = disk
        self.secure_boot = secure_boot
        self.tpm_state = tpm_state
        self._swtpm: subprocess.Popen | None = None
        self.workdir = workdir
        self.memory_mib = memory_mib
        self.cpus = cpus
        self.net = net
        self.snapshot = snapshot
        """Writes go to a temporary overlay (a cached disk stays as it is)."""
        self.disk_format = disk_format
        self.extra = extra
        self.serial_log = workdir / "serial.log"
        self.qemu_log = workdir / "qemu.log"
        self.process: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._buffer = ""
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._mark = 0
        self.stages: list[tuple[str, float]] = []
        """(stage, seconds since start) for every stage passed: printed by the tests."""
        self._started = 0.0

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def argv(self, socket_path: Path, vars_copy: Path) -> list[str]:
        drive = f"file={self.disk},if=virtio,format={self.disk_format},cache=unsafe,discard=unmap"
        if self.snapshot:
            drive += ",snapshot=on"
        code = OVMF_CODE_SB if self.secure_boot else OVMF_CODE
        machine = ["-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"] \
            if self.secure_boot else ["-machine", "q35"]
        argv = ["qemu-system-x86_64", *machine, "-accel", "tcg", "-cpu", "max", "-smp", str(self.cpus),
                "-m", str(self.memory_mib), "-nodefaults", "-display", "none", "-no-reboot",
                *([] if self.bios else ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                                        "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}"]),
                "-drive", drive,
                "-chardev", f"socket,id=ser0,path={socket_path},server=on,wait=on",
                "-serial", "chardev:ser0",
                "-device", "virtio-rng-pci"]
        if self.net:
            argv += ["-nic", "user,model=virtio-net-pci"]
        if self.tpm_state is not None:
            argv += ["-chardev", f"socket,id=chrtpm,path={socket_path.parent / 'swtpm'}",
                     "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-crb,tpmdev=tpm0"]
        return argv + list(self.extra)

    def _start_swtpm(self, sockdir: Path) -> None:
        assert self.tpm_state is not None
        self.tpm_state.mkdir(parents=True, exist_ok=True)
        self._swtpm = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.tpm_state}", "--terminate",
             "--ctrl", f"type=unixio,path={sockdir / 'swtpm'}", "--flags", "startup-clear"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.workdir / "swtpm.log", "w"))
        deadline = time.monotonic() + 10
        while not (sockdir / "swtpm").exists():
            if self._swtpm.poll() is not None or time.monotonic() > deadline:
                raise StageFailed("start", f"swtpm did not start:\n{(self.workdir / 'swtpm.log').read_text()}", "")
            time.sleep(0.05)

    def start(self) -> UefiMachine:
        self.workdir.mkdir(parents=True, exist_ok=True)
        vars_copy = self.workdir / "OVMF_VARS.fd"
        if not vars_copy.exists():
            shutil.copyfile(OVMF_VARS_SB if self.secure_boot else OVMF_VARS, vars_copy)
        # A short path: UNIX socket paths are limited to 108 bytes, pytest's tmp paths can be longer.
        self._sockdir = Path(os.path.realpath("/tmp")) / f"pb-{os.getpid()}-{id(self) & 0xffff:x}"
        self._sockdir.mkdir(mode=0o700, exist_ok=True)
        socket_path = self._sockdir / "serial"
        if self.tpm_state is not None:
            self._start_swtpm(self._sockdir)
        self.serial_log.write_text("")
        with open(self.qemu_log, "w") as qlog:
            self.process = subprocess.Popen(self.argv(socket_path, vars_copy), stdin=subprocess.DEVNULL,
                                            stdout=qlog, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:  # QEMU waits (wait=on) until this end connects: nothing of the console is lost
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(socket_path))
                break
            except OSError:
                sock.close()
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise StageFailed("start", f"QEMU did not open its serial socket:\n{self.qemu_log.read_text()}",
                                      "") from None
                time.sleep(0.1)
        self._sock = sock
        self._started = time.monotonic()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._sock is not None
        # One decoder for the whole stream: a character split between two reads is not lost.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with open(self.serial_log, "a", errors="replace") as out:
            while True:
                try:
                    data = self._sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                text = decoder.decode(data).replace("\r\n", "\n")
                out.write(text)
                out.flush()
                with self._lock:
                    self._buffer += text

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        if self._sock:
            self._sock.close()
        if self._reader:
            self._reader.join(timeout=5)
        if self._swtpm is not None:
            if self._swtpm.poll() is None:  # --terminate: it ends with QEMU's connection; never left behind
                self._swtpm.terminate()
            self._swtpm.wait(timeout=30)
        if getattr(self, "_sockdir", None):
            shutil.rmtree(self._sockdir, ignore_errors=True)

    def __enter__(self) -> UefiMachine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the console -----------------------------------------------------------------------------------------------
    @property
    def console(self) -> str:
        """Everything the console showed so far, without terminal escapes."""
        with self._lock:
            return ANSI.sub("", self._buffer)

    def expect(self, pattern: str, timeout: float, stage: str) -> re.Match:
        """Wait until `pattern` (a regex) shows on the console after the previous match; return the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.console, self._mark)
            if match:
                self._mark = match.end()
                self.stages.append((stage, time.monotonic() - self._started))
                return match
            if self.process is None or self.process.poll() is not None:
                time.sleep(0.5)  # the last bytes
                match = regex.search(self.console, self._mark)
                if match:
                    self._mark = match.end()
                    self.stages.append((stage, time.monotonic() - self._started))
                    return match
                rc = self.process.returncode if self.process else None
                raise StageFailed(stage, f"QEMU ended (exit {rc}) before the console showed /{pattern}/",
                                  self.console)
            if time.monotonic() > deadline:
                raise StageFailed(stage, f"the console did not show /{pattern}/ within {timeout:.0f} s",
                                  self.console)
            time.sleep(0.2)

    def send_line(self, text: str) -> None:
        """Type a line on the serial console (carriage return, as a terminal sends it)."""
        if self._sock is None:
            raise RuntimeError("the machine is not started")
        self._sock.sendall(text.encode() + b"\r")

    def type_secret(self, secret: str, timeout: float, stage: str, *, tries: int = 5) -> None:
        """Type `secret` at a systemd-ask-password prompt and press Enter only once every character was echoed
        (one star each, wherever other console output falls between them).

        The prompt flushes what was typed before it set the terminal up, and under TCG that moment is late and
        varies: each try first erases the line (Ctrl+U, which the prompt understands), so a half-flushed try
        never sends a truncated secret."""
        if self._sock is None:
            raise RuntimeError("the machine is not started")
        self._wait_for_hidden_input(timeout / 2, stage)
        for _ in range(tries):
            start = len(self.console)
            self._sock.sendall(b"\x15" + secret.encode())
            deadline = time.monotonic() + timeout / tries
            while time.monotonic() < deadline:
                if self.console[start:].count("*") >= len(secret):
                    self._sock.sendall(b"\r")
                    self._mark = len(self.console)
                    self.stages.append((stage, time.monotonic() - self._started))
                    return
                if self.process is None or self.process.poll() is not None:
                    raise StageFailed(stage, "QEMU ended while the secret was typed", self.console)
                time.sleep(0.2)
        with self._lock:
            raw = self._buffer[-300:]
        raise StageFailed(stage, f"{tries} tries: the prompt never echoed {len(secret)} stars (the console's last "
                                 f"bytes: {raw!r})", self.console)

    def _wait_for_hidden_input(self, timeout: float, stage: str) -> None:
        """The prompt's text shows before the agent turns the terminal's echo off: a secret typed in between is
        echoed in clear (the line discipline's echo). One harmless probe key at a time until it echoes as a star,
        then Ctrl+U erases it."""
        assert self._sock is not None
        deadline = time.monotonic() + timeout
        while True:
            start = len(self.console)
            self._sock.sendall(b"\x15x")
            probe_deadline = time.monotonic() + 3
            while time.monotonic() < probe_deadline:
                echoed = self.console[start:]
                if "*" in echoed and "start job" not in echoed:  # not systemd's spinner: the prompt's star
                    self._sock.sendall(b"\x15")
                    return
                time.sleep(0.2)
            if time.monotonic() > deadline or self.process is None or self.process.poll() is not None:
                raise StageFailed(stage, "the prompt never hid what is typed (no star for a probe key)",
                                  self.console)

    def answer(self, prompt_after: str, line: str, timeout: float, stage: str, *, tries: int = 5) -> re.Match:
        """Type `line` until `prompt_after` shows: a getty (agetty) or a password prompt flushes what was typed
        before it was ready, so the first line typed at a fresh prompt can be lost."""
        for attempt in range(1, tries + 1):
            self.send_line(line)
            try:
                return self.expect(prompt_after, timeout / tries, stage)
            except StageFailed:
                if attempt == tries or self.process is None or self.process.poll() is not None:
                    raise
        raise AssertionError("unreachable")

    def wait_exit(self, timeout: float, stage: str) -> int:
        """Wait for the guest to power off (QEMU ends: -no-reboot makes a reboot end it too)."""
        assert self.process is not None
        try:
            rc = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StageFailed(stage, f"the machine did not power off within {timeout:.0f} s", self.console) from None
        self.stages.append((stage, time.monotonic() - self._started))
        if self._reader:
            self._reader.join(timeout=5)
        if self._swtpm is not None:
            if self._swtpm.poll() is None:  # --terminate: it ends with QEMU's connection; never left behind
                self._swtpm.terminate()
            self._swtpm.wait(timeout=30)
        return rc

    def root_file(self, path: str, limit: int = 6000) -> str:
        """The end of a file on the disk's ext4 root partition (GPT name "root"), read with debugfs from the image:
        what the guest had written back by then. For a failure's report, when the console cannot say why (a service
        that writes only to tty1); F2FS, an overlay or a qcow2 disk say that they cannot be read here."""
        if self.snapshot or self.disk_format != "raw":
            return f"({path}: not readable here, the disk's writes are not in {self.disk})"
        table = json.loads(subprocess.run(["sfdisk", "--json", str(self.disk)], capture_output=True, text=True,
                                          check=False, timeout=30).stdout or "{}")
        sector = table.get("partitiontable", {}).get("sectorsize", 512)
        starts = [part["start"] for part in table.get("partitiontable", {}).get("partitions", [])
                  if part.get("name") == "root"]
        if not starts:
            return f"({path}: no partition named root on {self.disk})"
        found = subprocess.run(["debugfs", "-R", f"cat {path}", f"{self.disk}?offset={starts[0] * sector}"],
                               capture_output=True, text=True, errors="replace", check=False, timeout=60)
        if found.returncode != 0 or not found.stdout:
            return f"({path}: not read: {found.stderr.strip()[-300:]})"
        return found.stdout[-limit:]

    def timings(self) -> str:
        return ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in self.stages)
