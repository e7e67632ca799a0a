"""Run a built program on its target and collect what it reports: in one go (`run`) or as a running
process fed and read record by record (`start`, `RunningProgram`).

Input: the program reads its input from stdin (`fread(..., stdin)`), on the host and on every
Cortex-M target alike: QEMU's semihosting serves the guest's stdin from QEMU's own stdin, binary
safe (bytes 0x00 and 0xff pass), of any length, and as it arrives (a guest read returns what is
there), so a program can be driven interactively.

Output: stdout is returned as bytes; stderr separately. The Cortex-M startup adds
"edgegru-stack-peak: N" (bytes of stack ever used, from the painted stack) and on a fault
"edgegru-fault: Kind ..." to stderr. Every exchange has a timeout; a hang is killed, and so is the
program when the caller leaves a `RunningProgram` on an exception.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgegru.errors import EdgeGRUError

from . import icount
from .faults import emulated_fault_kind, host_fault_kind
from .targets import Target, get_target, require_tool

_STACK_LINE = re.compile(rb"^edgegru-stack-peak: (\d+)", re.MULTILINE)
_WRITE_CHUNK = 1 << 16


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
    """Run `exe` (from build()) on `target` with the given stdin to its end; raise EdgeGRUError on a timeout.

    `count_instructions` (Cortex-M only) loads the QEMU plugin and fills `instruction_counts`.
    """
    if stdin_bytes is not None and input_file is not None:
        raise EdgeGRUError("give either stdin_bytes or input_file, not both")
    if input_file is not None:
        stdin_bytes = Path(input_file).read_bytes()
    with start(target, exe, count_instructions=count_instructions) as program:
        return program.finish(stdin_bytes or b"", timeout_s=timeout_s)


def start(target: str | Target, exe: Path, *, count_instructions: bool = False) -> RunningProgram:
    """Start `exe` on `target` and return it running; use it as a context manager (killed on an exception)."""
    return RunningProgram(target, exe, count_instructions=count_instructions)


class RunningProgram:
    """A program running on its target: `exchange` writes input and reads exactly the output it should
    give, `finish` ends the input and returns the `RunResult` of the whole run, `kill` stops it.

    The program runs in its own process group (a kill stops exactly it and what it started); stderr
    goes to a file, so a chatty program cannot block on it.
    """

    def __init__(self, target: str | Target, exe: Path, *, count_instructions: bool = False):
        self.target = get_target(target)
        self.exe = Path(exe).resolve()
        if count_instructions and not self.target.emulated:
            raise EdgeGRUError(f"instruction counts need an emulated target, not {self.target.name}")
        self.count_instructions = count_instructions
        self._workdir = tempfile.TemporaryDirectory(prefix="edgegru-run-")
        workdir = Path(self._workdir.name)
        self._counts_file = workdir / "instruction_counts.txt"
        if self.target.emulated:
            command = qemu_command(self.target, self.exe)
            if count_instructions:
                command += icount.plugin_arguments(self.exe, self._counts_file)
        else:
            command = [str(self.exe)]
        self._stderr = open(workdir / "stderr.txt", "w+b")
        try:
            self.process = subprocess.Popen(
                command, cwd=workdir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                bufsize=0, start_new_session=True,
            )  # fmt: skip
        except OSError as error:
            self._cleanup()
            raise EdgeGRUError(f"cannot start {self.exe.name} on {self.target.name}: {error}") from None
        os.set_blocking(self.process.stdin.fileno(), False)
        self.result: RunResult | None = None

    def __enter__(self) -> RunningProgram:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if self.result is None:
            self.kill()

    @property
    def running(self) -> bool:
        return self.result is None

    def exchange(self, data: bytes, expect: int, timeout_s: float) -> bytes:
        """Write `data`, read exactly `expect` bytes of output (never more), both within `timeout_s`.

        If the program ends first, it is reaped and EdgeGRUError says how it ended (exit code, fault,
        the end of its stderr); on a timeout it is killed.
        """
        self._check_running()
        out, refused = self._pump(data, expect, time.monotonic() + timeout_s, timeout_s)
        if len(out) < expect:
            self._ended_early(f"after {len(out)} of the {expect} bytes expected")
        if refused:
            self._ended_early("before reading all its input")
        return out

    def finish(self, data: bytes = b"", timeout_s: float = 30.0) -> RunResult:
        """Write `data`, close stdin, read stdout to its end and wait for the exit: the run's result,
        its stdout being what was not read by `exchange`."""
        self._check_running()
        deadline = time.monotonic() + timeout_s
        stdout, _ = self._pump(data, None, deadline, timeout_s)  # a program may end without reading all input
        try:
            returncode = self.process.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            self._timed_out(timeout_s)
        return self._collect(returncode, stdout)

    def kill(self) -> None:
        """Stop the program (and anything it started) now, if it still runs; free its files."""
        if self.result is not None:
            return
        self._kill_group()
        self.process.wait()
        self.result = RunResult(self.process.returncode, b"", self._read_stderr())
        self._cleanup()

    def instruction_counts(self) -> list[int]:
        """The counts of the instruction-count windows completed so far (the plugin writes each at once)."""
        return icount.read_counts(self._counts_file) if self.count_instructions else []

    # --- internals -------------------------------------------------------------------------------

    def _pump(self, data: bytes, expect: int | None, deadline: float, timeout_s: float) -> tuple[bytes, bool]:
        """Write all of `data` while reading stdout: `expect` bytes, or (None) to end of file after
        closing stdin.  Stops early at end of file.  Returns (output, whether the program refused input:
        a broken pipe, it has ended)."""
        view, written, out, refused = memoryview(data), 0, bytearray(), False
        stdin, stdout = self.process.stdin, self.process.stdout.fileno()
        while True:
            writing = written < len(view) and not stdin.closed
            if not writing and expect is None and not stdin.closed:
                stdin.close()  # all input given: the program sees end of file
            reading = expect is None or len(out) < expect
            if not writing and not reading:
                return bytes(out), refused
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._timed_out(timeout_s)
            readable, writable, _ = select.select([stdout] if reading else [],
                                                  [stdin.fileno()] if writing else [], [], remaining)
            if writable:
                try:
                    written += os.write(stdin.fileno(), view[written:written + _WRITE_CHUNK])
                except BlockingIOError:
                    pass
                except BrokenPipeError:  # the program stopped reading (it ended): read what it wrote
                    stdin.close()
                    written, refused = len(view), True
            if readable:
                chunk = os.read(stdout, _WRITE_CHUNK if expect is None else expect - len(out))
                if not chunk:  # end of file: the program closed stdout, it has ended
                    return bytes(out), refused
                out += chunk

    def _check_running(self) -> None:
        if self.result is not None:
            raise EdgeGRUError(f"{self.exe.name} on {self.target.name} is no longer running")

    def _ended_early(self, when: str) -> None:
        try:
            returncode = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # closed stdout but still running
            self.kill()
            raise EdgeGRUError(
                f"{self.exe.name} on {self.target.name} closed its output {when} and was killed") from None
        result = self._collect(returncode, b"")
        how = f"a {result.fault_kind}" if result.fault_kind else f"exit code {result.exit_code}"
        stderr = result.stderr.decode(errors="replace").strip()[-300:]
        raise EdgeGRUError(f"{self.exe.name} on {self.target.name} ended {when}, with {how}"
                           + (f": {stderr}" if stderr else ""))

    def _timed_out(self, timeout_s: float) -> None:
        self.kill()
        raise EdgeGRUError(
            f"{self.exe.name} timed out after {timeout_s:g} s and was killed (an endless loop, a wait for input, "
            "or a program built for another machine)"
        )

    def _collect(self, returncode: int, stdout: bytes) -> RunResult:
        stderr = self._read_stderr()
        if self.target.emulated:
            stack = _STACK_LINE.search(stderr)
            result = RunResult(returncode, stdout, stderr, emulated_fault_kind(returncode, stderr),
                               self.instruction_counts(), int(stack.group(1)) if stack else None)
        else:
            result = RunResult(returncode, stdout, stderr, host_fault_kind(returncode))
        self.result = result
        self._cleanup()
        return result

    def _kill_group(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _read_stderr(self) -> bytes:
        if self._stderr.closed:
            return b""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()

    def _cleanup(self) -> None:
        for stream in (getattr(self, "process", None) and self.process.stdin,
                       getattr(self, "process", None) and self.process.stdout, self._stderr):
            if stream and not stream.closed:
                try:
                    stream.close()
                except OSError:
                    pass
        self._workdir.cleanup()
