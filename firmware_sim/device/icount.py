"""Exact guest instruction counts between edgegru_mark_begin() and edgegru_mark_end().

`runtime/icount_plugin.c` is a QEMU TCG plugin (API version 1, QEMU 7.2), compiled with the host
gcc on first use into a cache file named by the hash of its sources. It adds 1 per executed
instruction and writes one count per begin/end window (see runtime/edgegru_rt.h for the window).
The marker addresses come from the ELF symbol table (arm-none-eabi-nm).  See docs/firmware.md.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from edgegru.errors import EdgeGRUError

from .targets import require_tool

RUNTIME_DIR = Path(__file__).parent / "runtime"
PLUGIN_SOURCES = (RUNTIME_DIR / "icount_plugin.c", RUNTIME_DIR / "qemu_plugin_api.h")
MARKERS = ("edgegru_mark_begin", "edgegru_mark_end")


def marker_addresses(elf: Path) -> tuple[int, int]:
    """Addresses (Thumb bit cleared) of the begin and end marker functions in `elf`."""
    listing = subprocess.run(
        [require_tool("arm-none-eabi-nm"), str(elf)], capture_output=True, text=True, check=True
    ).stdout
    symbols = {}
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2] in MARKERS:
            symbols[fields[2]] = int(fields[0], 16) & ~1
    missing = [m for m in MARKERS if m not in symbols]
    if missing:
        raise EdgeGRUError(
            f"{elf.name} has no {', '.join(missing)}: instruction counting needs the program to call "
            "edgegru_mark_begin()/edgegru_mark_end() from runtime/edgegru_rt.h"
        )
    return symbols[MARKERS[0]], symbols[MARKERS[1]]


def plugin_arguments(elf: Path, counts_file: Path) -> list[str]:
    """The qemu-system-arm arguments that load the counting plugin for `elf`."""
    if "," in str(counts_file):
        raise EdgeGRUError(f"the counts file path must not contain a comma: {counts_file}")
    begin, end = marker_addresses(elf)
    return ["-plugin", f"{plugin_library()},begin={begin:#x},end={end:#x},out={counts_file}"]


def read_counts(counts_file: Path) -> list[int]:
    """One instruction count per completed begin/end window, in order."""
    if not counts_file.exists():
        return []
    return [int(line) for line in counts_file.read_text().split()]


def plugin_library() -> Path:
    """The compiled plugin, built once per source version (atomically: parallel runs are safe)."""
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in PLUGIN_SOURCES)).hexdigest()[:16]
    library = Path(tempfile.gettempdir()) / f"edgegru-icount-{digest}.so"
    if library.exists():
        return library
    partial = library.with_suffix(f".{os.getpid()}.tmp")
    command = [
        require_tool("gcc"), "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2",
        "-shared", "-fPIC", "-fvisibility=hidden", f"-I{RUNTIME_DIR}", str(PLUGIN_SOURCES[0]), "-o", str(partial),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EdgeGRUError(f"building the QEMU instruction-count plugin failed:\n{done.stderr.strip()}")
    os.replace(partial, library)
    return library
