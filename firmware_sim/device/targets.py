"""The targets a generated C program can be built for and run on.

`host` compiles with the system gcc (`host-clang` with clang) and runs natively. The `cortex-m*`
targets cross-compile with arm-none-eabi-gcc + newlib and run on QEMU's MPS2/MPS3 boards
(qemu-system-arm 7.2) through semihosting; the memory maps below are those of the QEMU board models
and fill the linker script template `runtime/link.ld.in` (docs/firmware.md lists both, and the toolchain).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from edgegru.errors import EdgeGRUError

# Command -> Debian package that provides it.
PACKAGES = {
    "gcc": "gcc",
    "clang": "clang",
    "arm-none-eabi-gcc": "gcc-arm-none-eabi",
    "arm-none-eabi-nm": "binutils-arm-none-eabi",
    "qemu-system-arm": "qemu-system-arm",
}
NEWLIB_PACKAGE = "libnewlib-arm-none-eabi"


@dataclass(frozen=True)
class Region:
    """A memory region: start address and length in bytes."""

    origin: int
    length: int


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    compiler: str
    cpu_flags: tuple[str, ...] = ()
    machine: str | None = None  # QEMU -M board; None for the host
    flash: Region | None = None  # code, read-only data and the .data image
    ram: Region | None = None  # .data, .bss, heap, and the stack at the top
    stack_bytes: int = 0x8000

    @property
    def emulated(self) -> bool:
        return self.machine is not None


_MPS2_FLASH = Region(0x0000_0000, 4 << 20)
_MPS2_RAM = Region(0x2000_0000, 4 << 20)

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("host", "the build machine, system gcc", "gcc"),
        Target("host-clang", "the build machine, clang", "clang"),
        Target(
            "cortex-m3", "Cortex-M3, no FPU: QEMU mps2-an385", "arm-none-eabi-gcc",
            ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"), "mps2-an385", _MPS2_FLASH, _MPS2_RAM,
        ),
        Target(
            "cortex-m4", "Cortex-M4F (DSP, single-precision FPU): QEMU mps2-an386", "arm-none-eabi-gcc",
            ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"), "mps2-an386",
            _MPS2_FLASH, _MPS2_RAM,
        ),
        Target(
            "cortex-m7", "Cortex-M7 (double-precision FPU): QEMU mps2-an500", "arm-none-eabi-gcc",
            ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"), "mps2-an500",
            _MPS2_FLASH, _MPS2_RAM,
        ),
        Target(
            "cortex-m33", "Cortex-M33 (ARMv8-M, secure state): QEMU mps2-an505", "arm-none-eabi-gcc",
            ("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"), "mps2-an505",
            Region(0x1000_0000, 4 << 20), Region(0x3800_0000, 2 << 20),
        ),
        Target(
            "cortex-m55", "Cortex-M55 (Helium MVE): QEMU mps3-an547, code in ITCM, data in DTCM",
            "arm-none-eabi-gcc", ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"), "mps3-an547",
            Region(0x0000_0000, 512 << 10), Region(0x2000_0000, 512 << 10),
        ),
    )
}


def get_target(target: str | Target) -> Target:
    """The Target of that name (a Target is returned as is); unknown names raise, listing the known ones."""
    if isinstance(target, Target):
        return target
    try:
        return TARGETS[target]
    except KeyError:
        raise EdgeGRUError(f"unknown target {target!r}; known targets: {', '.join(TARGETS)}") from None


def require_tool(command: str) -> str:
    """The path of a command, or an EdgeGRUError naming the Debian package to install."""
    path = shutil.which(command)
    if path is None:
        raise EdgeGRUError(f"{command} not found: {_install_hint(PACKAGES[command])}")
    return path


def require_toolchain(target: Target) -> None:
    """Check the compiler (and for Cortex-M, newlib with semihosting) before building."""
    require_tool(target.compiler)
    if target.emulated:
        require_tool("arm-none-eabi-nm")
        found = subprocess.run(
            [target.compiler, "-print-file-name=rdimon.specs"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found == "rdimon.specs":  # gcc echoes the bare name when it finds no such file
            raise EdgeGRUError(f"newlib's rdimon.specs not found: {_install_hint(NEWLIB_PACKAGE)}")


def _install_hint(package: str) -> str:
    return f"install the Debian package {package} (apt-get install -y --no-install-recommends {package})"
