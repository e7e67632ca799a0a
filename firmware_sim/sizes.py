"""Flash and RAM a Cortex-M program occupies, from the section headers of its ELF.

Read-only allocated sections (vector table, code, read-only data, unwind tables) and the .data
initial image live in flash; .data and .bss live in RAM. RAM here is static RAM only: the stack
(Target.stack_bytes, measured use in RunResult.stack_peak_bytes) and the newlib heap come on top.
"""

from __future__ import annotations

import struct
from pathlib import Path

from edgegru.errors import EdgeGRUError

SHF_WRITE, SHF_ALLOC = 0x1, 0x2
SHT_NOBITS = 8


def sizes(elf: Path) -> dict[str, int]:
    """{'flash', 'ram', 'text', 'data', 'bss'} in bytes; text = code + read-only data."""
    text = data = bss = 0
    for kind, flags, size in _sections(Path(elf).read_bytes()):
        if not flags & SHF_ALLOC:
            continue
        if not flags & SHF_WRITE:
            text += size
        elif kind == SHT_NOBITS:
            bss += size
        else:
            data += size
    return {"flash": text + data, "ram": data + bss, "text": text, "data": data, "bss": bss}


def _sections(image: bytes):
    """(type, flags, size) of each section of a little-endian 32-bit ELF."""
    if image[:4] != b"\x7fELF" or image[4] != 1 or image[5] != 1:
        raise EdgeGRUError("sizes() reads 32-bit little-endian ELF files (the Cortex-M targets)")
    shoff, = struct.unpack_from("<I", image, 0x20)
    shentsize, shnum = struct.unpack_from("<HH", image, 0x2E)
    for i in range(shnum):
        _, kind, flags, _, _, size = struct.unpack_from("<IIIIII", image, shoff + i * shentsize)
        yield kind, flags, size
