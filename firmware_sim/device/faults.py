"""Exit codes by which the Cortex-M startup reports a fault: their one definition.

`build` passes them to `runtime/startup_cortexm.c` as -DEDGEGRU_EXIT_<KIND>; each
fault handler also writes "edgegru-fault: <Kind> CFSR=... HFSR=... MMFAR=... BFAR=..." to stderr.
A run counts as a fault only when both agree, so a program returning 241 by itself is not one.
The handlers run on their own small stack, so a stack overflow is reported too (ARMv8-M: a
UsageFault from the MSPLIM stack limit; ARMv7-M has no limit and notices it late or not at all).
A fault inside a fault handler locks the core up: QEMU stops and the kind is "Lockup".
"""

from __future__ import annotations

import re
import signal

FAULT_EXIT_CODES = {
    "HardFault": 241,
    "MemManage": 242,
    "BusFault": 243,
    "UsageFault": 244,
    "SecureFault": 245,  # ARMv8-M only
    "UnexpectedException": 246,  # NMI, SVC, DebugMonitor, PendSV, SysTick: none is used
}

_FAULT_LINE = re.compile(rb"^edgegru-fault: (\w+)", re.MULTILINE)


def fault_defines() -> dict[str, int]:
    """The -D macros of the startup code: EDGEGRU_EXIT_HARDFAULT=241, ..."""
    return {f"EDGEGRU_EXIT_{kind.upper()}": code for kind, code in FAULT_EXIT_CODES.items()}


def emulated_fault_kind(exit_code: int, stderr: bytes) -> str | None:
    """The fault kind of a Cortex-M run, or None if it ended normally."""
    if b"qemu: fatal: Lockup" in stderr:
        return "Lockup"
    match = _FAULT_LINE.search(stderr)
    if match is None:
        return None
    kind = match.group(1).decode()
    return kind if FAULT_EXIT_CODES.get(kind) == exit_code else None


def host_fault_kind(returncode: int) -> str | None:
    """A host program killed by a signal reports its name (SIGSEGV, SIGFPE, ...), else None."""
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"
