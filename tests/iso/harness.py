"""Boot the live medium as a machine boots it: QEMU (q35, TCG) with OVMF (tests/boot/harness.py's UefiMachine),
the ISO as a USB stick (the hybrid image written with dd) or an optical drive, a VGA card whose console the
installer draws on, and QEMU's monitor (HMP) for the keyboard (`sendkey`) and `screendump`.

The screen is read two ways. From outside, without touching the guest: QEMU's `screendump` (PPM) cut into 8x16
cells, each matched against the glyphs of the medium's console font (the frame buffer console draws exactly
those bitmaps), so a test can wait for a screen while the machine boots. From inside, once the system is up: the
keyboard switches to tty2 (the medium's root shell), types a command that writes `/dev/vcsuN` (the console's
characters, UCS-4) and its size to the serial port, and switches back: what the console holds, character by
character, including those the font must draw.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from tests.boot.harness import StageFailed, UefiMachine

#: Characters typed through `sendkey`: the key names of QEMU's HMP for a US keyboard.
KEYS = {" ": "spc", "-": "minus", "=": "equal", "/": "slash", ".": "dot", ",": "comma", ";": "semicolon",
        "'": "apostrophe", "\n": "ret", "\t": "tab", "\\": "backslash", "[": "bracket_left",
        "]": "bracket_right", "`": "grave_accent"}
SHIFTED = {"_": "minus", "+": "equal", "?": "slash", ">": "dot", "<": "comma", ":": "semicolon", '"': "apostrophe",
           "|": "backslash", "{": "bracket_left", "}": "bracket_right", "~": "grave_accent", "!": "1", "@": "2",
           "#": "3", "$": "4", "%": "5", "^": "6", "&": "7", "*": "8", "(": "9", ")": "0"}
SCREEN = re.compile(r"SCREEN-BEGIN (\d+) (\d+)\n(.*?)SCREEN-END", re.S)


def key_name(char: str) -> str:
    if char.isascii() and (char.islower() or char.isdigit()):
        return char
    if char.isascii() and char.isupper():
        return f"shift-{char.lower()}"
    if char in KEYS:
        return KEYS[char]
    if char in SHIFTED:
        return f"shift-{SHIFTED[char]}"
    raise ValueError(f"no key for {char!r}")


class LiveMachine(UefiMachine):
    """`disk` is the install target (virtio, /dev/vda); the ISO boots first (bootindex), as a USB stick
    (`usb=True`, /dev/sda: listed among the disks, so the installer must refuse it) or a CD (/dev/sr0);
    `disks` are more virtio disks (vdb, ...)."""

    def __init__(self, disk: Path, workdir: Path, iso: Path, *, usb: bool = True, disks: tuple[Path, ...] = (),
                 memory_mib: int = 2048, bios: bool = False) -> None:
        self.monitor_path = workdir / "monitor.sock"
        extra = ["-device", "VGA", "-monitor", f"unix:{self.monitor_path},server=on,wait=off",
                 "-drive", f"if=none,id=iso,file={iso},format=raw,readonly=on"]
        if usb:
            extra += ["-device", "qemu-xhci", "-device", "usb-storage,drive=iso,bootindex=0,removable=on"]
        else:
            extra += ["-device", "ide-cd,drive=iso,bootindex=0"]
        for path in disks:
            extra += ["-drive", f"file={path},if=virtio,format=raw,cache=unsafe"]
        super().__init__(disk, workdir, memory_mib=memory_mib, extra=tuple(extra), bios=bios)
        self._monitor: socket.socket | None = None

    # -- the monitor ---------------------------------------------------------------------------------------------
    def hmp(self, command: str) -> str:
        """One HMP command; returns what the monitor answered (up to its next prompt)."""
        if self._monitor is None:
            deadline = time.monotonic() + 30
            while True:
                try:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.connect(str(self.monitor_path))
                    break
                except OSError:
                    sock.close()
                    if time.monotonic() > deadline:
                        raise StageFailed("monitor", "QEMU's monitor socket did not open", self.console) from None
                    time.sleep(0.2)
            self._monitor = sock
            self._read_prompt()
        self._monitor.sendall(command.encode() + b"\n")
        return self._read_prompt()

    def _read_prompt(self) -> str:
        assert self._monitor is not None
        data = b""
        self._monitor.settimeout(30)
        while not data.endswith(b"(qemu) "):
            chunk = self._monitor.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace")

    def sendkey(self, *keys: str) -> None:
        for key in keys:
            self.hmp(f"sendkey {key}")
            time.sleep(0.05)

    def type_text(self, text: str) -> None:
        """Type on the VGA console's keyboard (a US layout)."""
        self.sendkey(*(key_name(c) for c in text))

    def screendump(self, path: Path, fmt: str = "png") -> Path:
        path.unlink(missing_ok=True)
        self.hmp(f"screendump {path} -f {fmt}")
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        return path

    def screen_text(self, glyphs: dict[bytes, str]) -> list[str]:
        """The frame buffer's text, read from a screendump: each 8x16 cell's pixels that differ from its most
        common colour are its glyph's bits, looked up in `glyphs` (bitmap -> character; `?` when unknown)."""
        data = self.screendump(self.workdir / "screen.ppm", "ppm").read_bytes()
        magic, width, height, _depth, pixels = data.split(maxsplit=4)
        width, height = int(width), int(height)
        assert magic == b"P6"
        lines = []
        for row in range(height // 16):
            line = []
            for col in range(width // 8):
                cell = [pixels[((row * 16 + y) * width + col * 8) * 3:((row * 16 + y) * width + col * 8 + 8) * 3]
                        for y in range(16)]
                colours = [c[i:i + 3] for c in cell for i in range(0, 24, 3)]
                background = max(set(colours), key=colours.count)
                bits = bytes(sum(0x80 >> x for x in range(8) if c[x * 3:x * 3 + 3] != background) for c in cell)
                line.append(glyphs.get(bits, "?"))
            lines.append("".join(line).rstrip())
        return lines

    def wait_text(self, glyphs: dict[bytes, str], pattern: str, timeout: float, stage: str,
                  every: float = 10) -> list[str]:
        """Screendumps until `pattern` (a regex) shows on the screen; returns its lines."""
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while True:
            lines = self.screen_text(glyphs)
            if re.search(pattern, "\n".join(lines)):
                self.stages.append((stage, time.monotonic() - self._started))
                return lines
            if time.monotonic() > deadline or self.process is None or self.process.poll() is not None:
                shown = "\n".join(line for line in lines if line.strip())
                raise StageFailed(stage, f"the screen did not show /{pattern}/ within {timeout:.0f} s; it shows:\n"
                                         f"{shown}", self.console)
            time.sleep(every)

    def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None
        super().stop()

    def boot_entry(self, title: str, down: int = 0) -> None:
        """At GRUB's menu (shown on the serial port too): the entry `down` rows below the default, chosen with the
        arrow keys and Enter on the serial line. The keyboard stays untouched until GRUB has handed over."""
        self.expect(r"Install Phyllome OS unattended", 300, "firmware -> GRUB's menu (serial)")
        assert self._sock is not None
        for _ in range(down):
            self._sock.sendall(b"\x1b[B")
            time.sleep(0.5)
        self._sock.sendall(b"\r")
        time.sleep(5)  # GRUB loads the kernel; the keyboard is the kernel's from then on
        self.stages.append((f"GRUB boots '{title}'", time.monotonic() - self._started))

    # -- the consoles --------------------------------------------------------------------------------------------
    def shell(self, command: str, stage: str, *, back_to: int = 1, timeout: float = 120) -> str:
        """Run `command` in tty2's root shell (Alt+F2, typed on the keyboard); returns its output, which goes to
        the serial port between markers. Switches back to console `back_to` afterwards."""
        self.sendkey("alt-f2")
        time.sleep(1)
        number = len(self.stages)
        regex = re.compile(rf"OUT{number}-BEGIN\n(.*?)OUT{number}-END", re.S)
        line = f"(echo OUT{number}-BEGIN; {command}; echo; echo OUT{number}-END) >/dev/ttyS0 2>&1\n"
        deadline = time.monotonic() + timeout
        start = len(self._raw())
        while True:
            self.type_text(line)
            try:
                found = self._wait(regex, start, min(40.0, max(1.0, deadline - time.monotonic())))
                break
            except TimeoutError:
                if time.monotonic() > deadline or self.process is None or self.process.poll() is not None:
                    raise StageFailed(stage, "no answer from tty2's root shell", self.console) from None
                self.sendkey("ctrl-u")  # a half-typed line (the shell was not ready yet) is dropped
        self.sendkey(f"alt-f{back_to}")
        self.stages.append((stage, time.monotonic() - self._started))
        return found.group(1)

    def read_console(self, tty: int, stage: str, *, timeout: float = 120) -> list[str]:
        """The lines shown on virtual console `tty` (its /dev/vcsuN: what the console shows, character by
        character), read through tty2's shell."""
        out = self.shell(f"echo SCREEN-BEGIN $(stty -F /dev/tty{tty} size); iconv -f UTF-32LE -t UTF-8 "
                         f"/dev/vcsu{tty}; echo; echo SCREEN-END", stage, back_to=tty, timeout=timeout)
        found = SCREEN.search(out)
        if not found:
            raise StageFailed(stage, f"tty{tty}'s screen was not read: {out[-500:]!r}", self.console)
        rows, cols, text = int(found.group(1)), int(found.group(2)), found.group(3)
        return [text[i * cols:(i + 1) * cols].rstrip() for i in range(rows)]

    def _raw(self) -> str:
        """The serial console as received, without carriage returns (a CR LF split between two reads keeps its
        CR), escapes and all: the screen's own characters are kept."""
        with self._lock:
            return self._buffer.replace("\r", "")

    def _wait(self, regex: re.Pattern, start: int, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = regex.search(self._raw(), start)
            if found:
                return found
            time.sleep(0.3)
        raise TimeoutError
