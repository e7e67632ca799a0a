"""firmware_sim.device: build and run C on the host and on emulated Cortex-M cores, count instructions.

`make test` installs the compilers and QEMU; where one is missing the test fails naming its Debian package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgegru.errors import EdgeGRUError
from firmware_sim.device import targets
from firmware_sim.device.build import build
from firmware_sim.device.execute import run, start
from firmware_sim.device.sizes import sizes
from firmware_sim.device.targets import get_target, require_tool, require_toolchain

HOSTS = ["host", "host-clang"]
CORES = ["cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]
DOT_LENGTHS = [0, 8, 16, 32, 64, 64]

EXIT_PROGRAM = r"""
#include <stdio.h>
int main(void) { printf("hello\n"); return 7; }
"""

FAULT_PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
typedef void (*function)(void);
int main(void)
{
    int kind = getchar();
    if (kind == 'u') __asm volatile(".inst.n 0xde00"); /* UDF: undefined instruction */
    if (kind == 'b') return (int)*(volatile uint32_t *)0xF0000000u; /* no device there */
    if (kind == 'm') { uintptr_t xn = 0xE0000001u; ((function)xn)(); } /* execute from the XN system region */
    if (kind == 'h') __asm volatile("bkpt #1"); /* debug event without a debugger: escalates */
    return 0;
}
"""

# A two-file program (a source, a library source and its header in an include directory): a stream
# of int8 dot products, one marker window per step.
#   stdin:  steps (1 byte), then per step: n (1 byte), a (n x int8), b (n x int8)
#   stdout: one line per step, the int32 dot product in decimal
#   exit:   0, or 1 if stdin ends early
DOT_HEADER = r"""
#include <stddef.h>
#include <stdint.h>
int32_t dot_int8(const int8_t *a, const int8_t *b, size_t n);
"""

DOT_LIBRARY = r"""
#include "dot_int8.h"
int32_t dot_int8(const int8_t *a, const int8_t *b, size_t n)
{
    int32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += (int32_t)a[i] * (int32_t)b[i];
    }
    return acc;
}
"""

DOT_STREAM = r"""
#include <stdio.h>
#include "dot_int8.h"
#include "edgegru_rt.h"
static int read_bytes(void *buffer, size_t n) { return fread(buffer, 1, n, stdin) == n; }
int main(void)
{
    unsigned char steps, n;
    static int8_t a[255], b[255];
    if (!read_bytes(&steps, 1)) {
        return 1;
    }
    for (unsigned step = 0; step < steps; step++) {
        int32_t dot;
        if (!read_bytes(&n, 1) || !read_bytes(a, n) || !read_bytes(b, n)) {
            return 1;
        }
        edgegru_mark_begin();
        dot = dot_int8(a, b, n);
        edgegru_mark_end();
        printf("%ld\n", (long)dot);
    }
    return 0;
}
"""

# Echoes each line of stdin back at once (stdin unbuffered, stdout flushed per line): an interactive program.
ECHO_PROGRAM = r"""
#include <stdio.h>
int main(void)
{
    int c;
    setvbuf(stdin, NULL, _IONBF, 0);
    while ((c = getchar()) != EOF) {
        putchar(c);
        if (c == '\n') fflush(stdout);
    }
    return 0;
}
"""

EXIT_ON_INPUT_PROGRAM = r"""
#include <stdio.h>
int main(void) { getchar(); fputs("giving up\n", stderr); return 3; }
"""

LOOP_PROGRAM = "int main(void) { volatile int spin = 1; while (spin) { } return 0; }\n"

STACK_PROGRAM = r"""
#include <stdio.h>
#include "edgegru_rt.h"
static volatile unsigned char sink;
static __attribute__((noinline)) void use_stack(void)
{
    volatile unsigned char big[4096];
    for (unsigned i = 0; i < sizeof big; i++) big[i] = (unsigned char)i;
    sink = big[100];
}
int main(void)
{
    edgegru_stack_paint();
    use_stack();
    printf("%lu\n", (unsigned long)edgegru_stack_peak_bytes());
    return 0;
}
"""



def build_text(name: str, source: str, out_dir: Path) -> Path:
    path = out_dir / "program.c"
    path.write_text(source)
    return build(get_target(name), [path], out_dir=out_dir / name)


def dot_stream(lengths: list[int], seed: int = 0) -> tuple[bytes, list[int]]:
    """The demo's stdin (see DOT_STREAM) and the expected dot products."""
    rng = np.random.default_rng(seed)
    payload, expected = bytes([len(lengths)]), []
    for n in lengths:
        a, b = (rng.integers(-128, 128, n, dtype=np.int8) for _ in range(2))
        payload += bytes([n]) + a.tobytes() + b.tobytes()
        expected.append(int(a.astype(np.int32) @ b.astype(np.int32)))
    return payload, expected


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Build the dot-product demo once per target: {target name: executable}."""
    out = tmp_path_factory.mktemp("demo")
    library = out / "include"
    library.mkdir()
    (library / "dot_int8.h").write_text(DOT_HEADER)
    (out / "dot_int8.c").write_text(DOT_LIBRARY)
    (out / "dot_stream.c").write_text(DOT_STREAM)
    built = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = build(get_target(name), [out / "dot_stream.c", out / "dot_int8.c"], [library], out / name)
        return built[name]

    return get


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(EdgeGRUError, match="unknown target 'cortex-m99'.*host.*cortex-m4.*cortex-m55"):
        get_target("cortex-m99")


def test_missing_tools_name_the_debian_package(monkeypatch):
    monkeypatch.setattr(targets.shutil, "which", lambda command: None)
    with pytest.raises(EdgeGRUError, match="apt-get install .*qemu-system-arm"):
        require_tool("qemu-system-arm")
    with pytest.raises(EdgeGRUError, match="gcc-arm-none-eabi"):
        require_toolchain(get_target("cortex-m4"))


@pytest.mark.parametrize("name", HOSTS + CORES)
def test_demo_reads_stdin_and_prints_the_dot_products(name, demo):
    payload, expected = dot_stream(DOT_LENGTHS)
    result = run(name, demo(name), payload)
    assert result.exit_code == 0, result.stderr
    assert result.fault_kind is None
    assert [int(line) for line in result.text.split()] == expected


@pytest.mark.parametrize("name", HOSTS + CORES)
def test_exit_code_and_stdout_come_back(name, tmp_path):
    result = run(name, build_text(name, EXIT_PROGRAM, tmp_path))
    assert (result.exit_code, result.stdout, result.fault_kind) == (7, b"hello\n", None)


@pytest.mark.parametrize("name", CORES)
def test_instruction_counts_are_exact_repeatable_and_linear(name, demo):
    payload, _ = dot_stream(DOT_LENGTHS)
    first = run(name, demo(name), payload, count_instructions=True).instruction_counts
    second = run(name, demo(name), dot_stream(DOT_LENGTHS, seed=1)[0], count_instructions=True).instruction_counts
    assert len(first) == len(DOT_LENGTHS)  # one count per step of the stream
    assert first == second  # no data-dependent branches in the kernel: same count for other data
    assert first[-1] == first[-2]  # two equal steps of one stream
    # From 8 on the loop count is c0 + k * n exactly.
    by_length = dict(zip(DOT_LENGTHS, first))
    per_element = (by_length[16] - by_length[8]) // 8
    assert per_element > 0
    for n in (8, 16, 32, 64):
        assert by_length[n] == by_length[8] + per_element * (n - 8)


def test_input_file_is_the_same_as_stdin_bytes(demo, tmp_path):
    payload, expected = dot_stream([3, 200])
    (tmp_path / "input.bin").write_bytes(payload)
    result = run("cortex-m33", demo("cortex-m33"), input_file=tmp_path / "input.bin")
    assert [int(line) for line in result.text.split()] == expected


def test_instruction_counts_need_an_emulated_target(demo):
    with pytest.raises(EdgeGRUError, match="emulated target"):
        run("host", demo("host"), dot_stream([4])[0], count_instructions=True)


@pytest.mark.parametrize("name", ["cortex-m4", "cortex-m33", "cortex-m55"])
@pytest.mark.parametrize(
    "trigger, kind", [("u", "UsageFault"), ("b", "BusFault"), ("m", "MemManage"), ("h", "HardFault")]
)
def test_a_fault_reports_its_kind(name, trigger, kind, tmp_path):
    result = run(name, build_text(name, FAULT_PROGRAM, tmp_path), trigger.encode())
    assert result.fault_kind == kind, result.stderr
    assert result.exit_code != 0


@pytest.mark.parametrize("name", ["host", "cortex-m4"])
def test_a_hang_is_killed_by_the_timeout(name, tmp_path):
    exe = build_text(name, LOOP_PROGRAM, tmp_path)
    with pytest.raises(EdgeGRUError, match="timed out after 1 s"):
        run(name, exe, timeout_s=1)


@pytest.mark.parametrize("name", ["cortex-m4", "cortex-m55"])
def test_stack_paint_measures_the_deepest_use(name, tmp_path):
    result = run(name, build_text(name, STACK_PROGRAM, tmp_path))
    measured = int(result.text)
    assert 4096 < measured < 4096 + 512  # the 4 KB array and a few frames
    assert result.stack_peak_bytes >= measured  # the whole run, printf included


def test_sizes_split_flash_and_ram(demo):
    size = sizes(demo("cortex-m4"))
    assert size["flash"] == size["text"] + size["data"] > 1000
    assert size["ram"] == size["data"] + size["bss"] >= 2 * 255  # the two static int8 buffers


@pytest.mark.parametrize("name", ["host", "cortex-m4"])
def test_a_running_program_answers_each_exchange_at_once(name, tmp_path):
    """Interactive use: each line written is echoed back before the next is written; the counts of a
    marker-less program are empty and the run ends cleanly when stdin closes."""
    with start(name, build_text(name, ECHO_PROGRAM, tmp_path)) as program:
        for line in (b"first\n", b"\x00\xff binary\n", b"third\n"):
            assert program.exchange(line, len(line), timeout_s=30) == line
        result = program.finish(timeout_s=30)
    assert (result.exit_code, result.stdout, result.fault_kind) == (0, b"", None)


@pytest.mark.parametrize("name", ["host", "cortex-m4"])
def test_a_program_that_ends_during_an_exchange_raises_with_its_exit_and_stderr(name, tmp_path):
    program = start(name, build_text(name, EXIT_ON_INPUT_PROGRAM, tmp_path))
    with pytest.raises(EdgeGRUError, match="ended after 0 of the 4 bytes expected, with exit code 3: giving up"):
        program.exchange(b"x", 4, timeout_s=30)
    assert not program.running and program.result.exit_code == 3


def test_a_running_program_that_hangs_is_killed(tmp_path):
    program = start("host", build_text("host", ECHO_PROGRAM, tmp_path))
    with pytest.raises(EdgeGRUError, match="timed out after 0.5 s"):
        program.exchange(b"no newline", 10, timeout_s=0.5)
    assert not program.running and program.process.poll() is not None
