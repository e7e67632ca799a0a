"""Compile C sources plus our runtime into a host executable or a Cortex-M ELF.

Every target compiles with COMMON_CFLAGS. Cortex-M programs link our own startup
(`runtime/startup_cortexm.c`) and a linker script generated from `runtime/link.ld.in` with the
target's memory map, newlib-nano and the semihosting library (rdimon): stdio, files and exit()
reach the host through QEMU's semihosting.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from string import Template

from edgegru.errors import EdgeGRUError

from .faults import fault_defines
from .targets import Target, get_target, require_toolchain

RUNTIME_DIR = Path(__file__).parent / "runtime"
COMMON_CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2")
# Drop unused functions and data so that sizes() measures what the program needs.
SECTION_GC = ("-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections")
CORTEX_M_LINK = ("--specs=nano.specs", "--specs=rdimon.specs", "-nostartfiles")


def build(
    target: str | Target,
    sources: Sequence[Path],
    include_dirs: Sequence[Path] = (),
    out_dir: Path = Path("."),
    defines: dict[str, object] | None = None,
    name: str | None = None,
) -> Path:
    """Build `sources` (with `runtime/edgegru_rt.c`) for `target`; return the ELF or host executable.

    `sources` may include object files from compile_objects(), linked as they are.
    `defines` maps macro names to values (None for a bare -DNAME). The output is
    `out_dir/<name>.elf` (Cortex-M) or `out_dir/<name>` (host); `name` defaults to the first
    source's stem. A compiler error raises EdgeGRUError carrying the compiler's message.
    """
    target = get_target(target)
    require_toolchain(target)
    sources = [Path(s) for s in sources]
    if not sources:
        raise EdgeGRUError("build needs at least one C source")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or sources[0].stem
    all_defines = dict(defines or {})
    runtime = [RUNTIME_DIR / "edgegru_rt.c"]
    link: list[str] = []
    if target.emulated:
        all_defines.update(fault_defines())
        runtime.insert(0, RUNTIME_DIR / "startup_cortexm.c")
        script = write_linker_script(target, out_dir / f"{target.name}.ld")
        link = [*CORTEX_M_LINK, "-T", str(script)]
    exe = out_dir / (f"{name}.elf" if target.emulated else name)

    command = [
        target.compiler,
        *target.cpu_flags,
        *COMMON_CFLAGS,
        *SECTION_GC,
        *(_define_flag(k, v) for k, v in all_defines.items()),
        *(f"-I{d}" for d in [RUNTIME_DIR, *include_dirs]),
        *(str(s) for s in [*runtime, *sources]),
        *link,
        "-o",
        str(exe),
        *(["-lrdimon"] if target.emulated else []),
        "-lm",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EdgeGRUError(f"building {name} for {target.name} failed:\n{done.stderr.strip()}")
    return exe


def compile_objects(
    target: str | Target,
    sources: Sequence[Path],
    include_dirs: Sequence[Path] = (),
    out_dir: Path = Path("."),
    defines: dict[str, object] | None = None,
    cflags: Sequence[str] = ("-O2",),
) -> list[Path]:
    """Compile third-party C `sources` for `target` into object files for build(), one per source.

    Unlike build(), only the target's CPU flags, `cflags` and section splitting apply (not our -Werror
    -pedantic rules): this is for library code we do not write. Objects are named by source stem in
    `out_dir`. A compiler error raises EdgeGRUError carrying the compiler's message.
    """
    target = get_target(target)
    require_toolchain(target)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    objects = []
    for source in map(Path, sources):
        obj = out_dir / f"{source.stem}.o"
        command = [
            target.compiler, *target.cpu_flags, *cflags, "-ffunction-sections", "-fdata-sections",
            *(_define_flag(k, v) for k, v in (defines or {}).items()), *(f"-I{d}" for d in include_dirs),
            "-c", str(source), "-o", str(obj),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise EdgeGRUError(f"compiling {source.name} for {target.name} failed:\n{done.stderr.strip()}")
        objects.append(obj)
    return objects


def write_linker_script(target: Target, path: Path) -> Path:
    """Fill `runtime/link.ld.in` with the target's memory map and stack size."""
    template = Template((RUNTIME_DIR / "link.ld.in").read_text())
    path.write_text(
        template.substitute(
            flash_origin=hex(target.flash.origin),
            flash_length=hex(target.flash.length),
            ram_origin=hex(target.ram.origin),
            ram_length=hex(target.ram.length),
            stack_size=hex(target.stack_bytes),
        )
    )
    return path


def _define_flag(macro: str, value: object) -> str:
    return f"-D{macro}" if value is None else f"-D{macro}={value}"
