"""The live console's font: console-setup's Uni2-Terminus16 with every block element (U+2580-U+259F).

The installer (Textual) draws its buttons, inputs, scroll bars and progress bars with the block elements: the
eighth blocks (U+2581-U+2587, U+2589-U+258F, U+2594, U+2595), the halves and the quadrants. No console font of
Debian 12 has them all (Fedora's default, eurlatgr, lacks most too), and the kernel's console holds at most 512
glyphs, all of them used by Uni2-Terminus16. So this module draws the block elements (they are rectangles of an
8x16 cell) into the glyph slots of characters nothing of the installer draws and no name needs alone: the spacing
accents (U+02B0-U+02FF), the technical symbols (U+2300-U+23FF) and the accented Greek letters (tonos and
dialytika; Greek without accents stays), and writes `phyllome16.psf.gz` (PSF1, 512 glyphs, with its Unicode
table) into the live root's /usr/share/consolefonts, named by vconsole.conf's FONT=.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

SOURCE = "usr/share/consolefonts/Uni2-Terminus16.psf.gz"
TARGET = "usr/share/consolefonts/phyllome16.psf.gz"
WIDTH, HEIGHT = 8, 16
SPARE = (range(0x02B0, 0x0300), range(0x2300, 0x2400), range(0x0384, 0x0391), range(0x03AA, 0x03B1),
         range(0x03CA, 0x03CF))
"""Code points whose glyphs may be given to the block elements (a glyph only when all of its code points are here)."""


def _rect(rows: range, cols: range) -> list[int]:
    bits = sum(0x80 >> c for c in cols)
    return [bits if r in rows else 0 for r in range(HEIGHT)]


def _quadrants(ul: bool, ur: bool, ll: bool, lr: bool) -> list[int]:
    top = (0xF0 if ul else 0) | (0x0F if ur else 0)
    bottom = (0xF0 if ll else 0) | (0x0F if lr else 0)
    return [top] * (HEIGHT // 2) + [bottom] * (HEIGHT // 2)


def block_elements() -> dict[int, list[int]]:
    """U+2580-U+259F as 8x16 bitmaps (one byte a row, the leftmost pixel in the high bit)."""
    glyphs = {0x2580: _rect(range(0, 8), range(8)), 0x2588: _rect(range(16), range(8)),
              0x2590: _rect(range(16), range(4, 8)), 0x2594: _rect(range(0, 2), range(8)),
              0x2595: _rect(range(16), range(7, 8))}
    for eighths in range(1, 8):  # U+2581..U+2587: the lower 1/8 .. 7/8
        glyphs[0x2580 + eighths] = _rect(range(HEIGHT - 2 * eighths, HEIGHT), range(8))
    for eighths in range(7, 0, -1):  # U+2589..U+258F: the left 7/8 .. 1/8
        glyphs[0x2590 - eighths] = _rect(range(HEIGHT), range(eighths))
    shades = {0x2591: (0x88, 0x22), 0x2592: (0xAA, 0x55), 0x2593: (0xEE, 0xBB)}
    for code, (even, odd) in shades.items():
        glyphs[code] = [even if r % 2 == 0 else odd for r in range(HEIGHT)]
    quads = {0x2596: "0010", 0x2597: "0001", 0x2598: "1000", 0x2599: "1011", 0x259A: "1001", 0x259B: "1110",
             0x259C: "1101", 0x259D: "0100", 0x259E: "0110", 0x259F: "0111"}
    for code, bits in quads.items():
        glyphs[code] = _quadrants(*(b == "1" for b in bits))
    return glyphs


def read_psf1(data: bytes) -> tuple[int, list[bytes], list[list[int]]]:
    """(mode, glyph bitmaps, Unicode code points of each glyph) of a PSF1 font with a Unicode table."""
    if data[:2] != b"\x36\x04":
        raise ValueError("not a PSF1 font")
    mode, size = data[2], data[3]
    count = 512 if mode & 1 else 256
    if not mode & 2 or size != HEIGHT:
        raise ValueError("the font needs a Unicode table and 8x16 glyphs")
    glyphs = [data[4 + i * size: 4 + (i + 1) * size] for i in range(count)]
    table = data[4 + count * size:]
    values = struct.unpack(f"<{len(table) // 2}H", table[: len(table) // 2 * 2])
    codes: list[list[int]] = [[] for _ in range(count)]
    glyph = 0
    for value in values:
        if value == 0xFFFF:
            glyph += 1
            if glyph == count:
                break
        elif value != 0xFFFE and glyph < count:
            codes[glyph].append(value)
    return mode, glyphs, codes


def write_psf1(mode: int, glyphs: list[bytes], codes: list[list[int]]) -> bytes:
    table = b"".join(struct.pack(f"<{len(c)}H", *c) + b"\xff\xff" for c in codes)
    return bytes([0x36, 0x04, mode, HEIGHT]) + b"".join(glyphs) + table


def covered(data: bytes) -> set[str]:
    """Every character a PSF1 font (plain or gzipped) has a glyph for."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    _, _, codes = read_psf1(data)
    return {chr(c) for glyph in codes for c in glyph}


def make(source: bytes) -> bytes:
    mode, glyphs, codes = read_psf1(gzip.decompress(source))
    wanted = {code: bitmap for code, bitmap in block_elements().items() if not any(code in c for c in codes)}
    spare = [i for i, c in enumerate(codes)
             if c and all(any(u in r for r in SPARE) for u in c)]
    if len(spare) < len(wanted):
        raise ValueError(f"{len(wanted)} block elements to add, {len(spare)} spare glyphs")
    for slot, (code, bitmap) in zip(spare, sorted(wanted.items()), strict=False):
        glyphs[slot] = bytes(bitmap)
        codes[slot] = [code]
    return gzip.compress(write_psf1(mode, glyphs, codes), mtime=0)


def install(root: Path) -> Path:
    target = root / TARGET
    target.write_bytes(make((root / SOURCE).read_bytes()))
    return target
