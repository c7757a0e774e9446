"""The host side of the vt tier: Debian's kernel (the VM tier's, tests/vm/harness.py) booted under QEMU with a VGA
text console and no display, a script of the guest run in it, and pictures of the console taken when the guest
asks for them (a line ``VT-SHOT NAME`` on its serial port: QEMU's monitor ``screendump``, then ``VT-SHOT-DONE``
back on the serial port so the guest goes on). Pictures are written as PNG."""

from __future__ import annotations

import socket
import struct
import subprocess
import zlib
from pathlib import Path

from tests.vm import harness


def ppm_to_png(ppm: bytes) -> bytes:
    """A binary PPM (P6, 8 bits) as a PNG: what QEMU's screendump writes, in a format docs can show."""
    fields: list[bytes] = []
    pos = 0
    while len(fields) < 4:
        while ppm[pos:pos + 1].isspace():
            pos += 1
        if ppm[pos:pos + 1] == b"#":
            pos = ppm.index(b"\n", pos) + 1
            continue
        end = pos
        while not ppm[end:end + 1].isspace():
            end += 1
        fields.append(ppm[pos:end])
        pos = end
    magic, width, height, depth = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic != b"P6" or depth != 255:
        raise ValueError(f"not an 8-bit P6 picture: {magic!r} {depth}")
    pixels = ppm[pos + 1:pos + 1 + width * height * 3]
    rows = b"".join(b"\x00" + pixels[y * width * 3:(y + 1) * width * 3] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


class Monitor:
    """QEMU's human monitor on a unix socket: one command at a time, each answered up to the next prompt."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(60)
        self.sock.connect(str(path))
        self._until_prompt()

    def _until_prompt(self) -> bytes:
        data = b""
        while not data.endswith(b"(qemu) "):
            part = self.sock.recv(4096)
            if not part:
                raise ConnectionError("the QEMU monitor closed")
            data += part
        return data

    def command(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\n")
        return self._until_prompt().decode(errors="replace")

    def close(self) -> None:
        self.sock.close()


def boot(script: Path, out: Path, pictures: Path, *, timeout: int = 2400,
         framebuffer: str = "1024x768") -> tuple[int | None, str]:
    """Boot with `-vga std -display none` (the kernel keeps the VGA text console: no DRM driver in the initramfs;
    `video=` is the mode the script's framebuffer console gets when it loads one), run `script` like the VM tier
    does, answer its picture requests; return its exit code and the serial log."""
    kernel = harness.fetch_kernel()
    initramfs = harness.build_initramfs(kernel)
    out.mkdir(parents=True, exist_ok=True)
    pictures.mkdir(parents=True, exist_ok=True)
    sock = out / "monitor.sock"
    argv = ["timeout", str(timeout), "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "2048",
            "-kernel", str(kernel.image), "-initrd", str(initramfs),
            "-append", f"console=ttyS0 quiet panic=-1 video={framebuffer} phyllome.test={script}",
            "-display", "none", "-vga", "std", "-no-reboot", "-nodefaults", "-serial", "stdio",
            "-monitor", f"unix:{sock},server,nowait",
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-virtfs", f"local,path={out},mount_tag=out,security_model=none"]
    serial: list[str] = []
    monitor = None
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as qemu:
        assert qemu.stdout is not None and qemu.stdin is not None
        for line in qemu.stdout:
            serial.append(line)
            if not line.startswith("VT-SHOT "):
                continue
            name = line.split(None, 1)[1].strip().replace("/", "-").replace(" ", "-")
            monitor = monitor or Monitor(sock)
            ppm = out / f"{name}.ppm"
            monitor.command(f"screendump {ppm}")
            if ppm.exists():
                (pictures / f"{name}.png").write_bytes(ppm_to_png(ppm.read_bytes()))
                ppm.unlink()
            qemu.stdin.write("VT-SHOT-DONE\n")
            qemu.stdin.flush()
    if monitor is not None:
        monitor.close()
    rc = (out / "rc").read_text().strip() if (out / "rc").exists() else None
    return (int(rc) if rc else None), "".join(serial)
