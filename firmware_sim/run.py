"""Run a built program on its target and collect what it reports.

Input: the program reads its input from stdin (`fread(..., stdin)`), on the host and on every
Cortex-M target alike: QEMU's semihosting serves the guest's stdin from QEMU's own stdin, binary
safe (bytes 0x00 and 0xff pass) and of any length. Give `stdin_bytes` or an `input_file`.

Output: stdout is returned as bytes; stderr separately. The Cortex-M startup adds
"edgegru-stack-peak: N" (bytes of stack ever used, from the painted stack) and on a fault
"edgegru-fault: Kind ..." to stderr. Every run has a timeout; a hang is killed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgegru.errors import EdgeGRUError

from . import icount
from .faults import emulated_fault_kind, host_fault_kind
from .targets import Target, get_target, require_tool

_STACK_LINE = re.compile(rb"^edgegru-stack-peak: (\d+)", re.MULTILINE)


@dataclass
class RunResult:
    exit_code: int  # the program's exit status (host: negative signal number if killed)
    stdout: bytes
    stderr: bytes
    fault_kind: str | None = None  # HardFault, MemManage, BusFault, UsageFault, ... (host: SIGSEGV, ...)
    instruction_counts: list[int] = field(default_factory=list)  # one per begin/end marker window
    stack_peak_bytes: int | None = None  # Cortex-M only: deepest stack use of the whole run

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")


def qemu_command(target: Target, elf: Path) -> list[str]:
    """The qemu-system-arm command line that runs `elf` with semihosting and no other I/O device."""
    return [
        require_tool("qemu-system-arm"), "-M", target.machine, "-nographic", "-monitor", "none",
        "-serial", "null", "-semihosting-config", "enable=on,target=native", "-kernel", str(elf),
    ]  # fmt: skip


def run(
    target: str | Target,
    exe: Path,
    stdin_bytes: bytes | None = None,
    *,
    input_file: Path | None = None,
    timeout_s: float = 30.0,
    count_instructions: bool = False,
) -> RunResult:
    """Run `exe` (from build()) on `target` with the given stdin; raise EdgeGRUError on a timeout.

    `count_instructions` (Cortex-M only) loads the QEMU plugin and fills `instruction_counts`.
    """
    target = get_target(target)
    exe = Path(exe).resolve()
    if stdin_bytes is not None and input_file is not None:
        raise EdgeGRUError("give either stdin_bytes or input_file, not both")
    if input_file is not None:
        stdin_bytes = Path(input_file).read_bytes()
    if count_instructions and not target.emulated:
        raise EdgeGRUError(f"instruction counts need an emulated target, not {target.name}")

    with tempfile.TemporaryDirectory(prefix="edgegru-run-") as workdir:
        counts_file = Path(workdir) / "instruction_counts.txt"
        if target.emulated:
            command = qemu_command(target, exe)
            if count_instructions:
                command += icount.plugin_arguments(exe, counts_file)
        else:
            command = [str(exe)]
        returncode, stdout, stderr = _run_with_timeout(command, stdin_bytes or b"", Path(workdir), timeout_s, exe)
        counts = icount.read_counts(counts_file) if count_instructions else []

    if not target.emulated:
        return RunResult(returncode, stdout, stderr, host_fault_kind(returncode))
    stack = _STACK_LINE.search(stderr)
    return RunResult(
        returncode,
        stdout,
        stderr,
        emulated_fault_kind(returncode, stderr),
        counts,
        int(stack.group(1)) if stack else None,
    )


def _run_with_timeout(
    command: list[str], stdin_bytes: bytes, cwd: Path, timeout_s: float, exe: Path
) -> tuple[int, bytes, bytes]:
    # Own process group, so a timeout kills exactly this run and anything it started.
    process = subprocess.Popen(
        command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = process.communicate(stdin_bytes, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise EdgeGRUError(
            f"{exe.name} timed out after {timeout_s:g} s and was killed (an endless loop, a wait for input, "
            "or a program built for another machine)"
        ) from None
    return process.returncode, stdout, stderr
