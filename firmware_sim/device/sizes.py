"""Flash and RAM a Cortex-M program occupies, from the section headers and symbols of its ELF.

Read-only allocated sections (vector table, code, read-only data, unwind tables) and the .data
initial image live in flash; .data and .bss live in RAM. RAM here is static RAM only: the stack
(Target.stack_bytes, measured use in RunResult.stack_peak_bytes) and the newlib heap come on top.
`symbol_sizes` gives the bytes of each named object (weights, biases, the step's scratch).
"""

from __future__ import annotations

import struct
from pathlib import Path

from edgegru.errors import EdgeGRUError

SHF_WRITE, SHF_ALLOC = 0x1, 0x2
SHT_NOBITS = 8
SHT_SYMTAB = 2
STT_OBJECT = 1


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


def symbol_sizes(elf: Path) -> dict[str, int]:
    """{symbol name: size in bytes} of the data objects (STT_OBJECT) in the ELF's symbol table."""
    image = Path(elf).read_bytes()
    sections = list(_section_headers(image))
    sizes_by_name: dict[str, int] = {}
    for kind, _, offset, size, link in ((h[1], h[2], h[4], h[5], h[6]) for h in sections):
        if kind != SHT_SYMTAB:
            continue
        strings = sections[link][4]
        for entry in range(offset, offset + size, 16):
            name, _, object_size, info = struct.unpack_from("<IIIB", image, entry)
            if info & 0xF == STT_OBJECT:
                end = image.index(b"\0", strings + name)
                sizes_by_name[image[strings + name:end].decode()] = object_size
    return sizes_by_name


def _section_headers(image: bytes):
    """(name, type, flags, addr, offset, size, link) of each section of a little-endian 32-bit ELF."""
    if image[:4] != b"\x7fELF" or image[4] != 1 or image[5] != 1:
        raise EdgeGRUError("sizes() reads 32-bit little-endian ELF files (the Cortex-M targets)")
    shoff, = struct.unpack_from("<I", image, 0x20)
    shentsize, shnum = struct.unpack_from("<HH", image, 0x2E)
    for i in range(shnum):
        yield struct.unpack_from("<IIIIIII", image, shoff + i * shentsize)


def _sections(image: bytes):
    """(type, flags, size) of each section of a little-endian 32-bit ELF."""
    for _, kind, flags, _, _, size, _ in _section_headers(image):
        yield kind, flags, size
