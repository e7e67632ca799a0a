"""Build the generated C model with the host compiler and stream sequences through it.

`run_host(model, x_q, lengths)` writes the generated model (`codegen.generate_c`), the kernels and a
small harness (`main.c`, `harness_source`) to a build directory, compiles them (`gcc`, or `$CC`) with
-std=c99 -Wall -Wextra -Werror -pedantic -O2, and runs the program once over all sequences.  The
returned per-step outputs are compared with the golden trace (`export.verify.golden_trace`).

The harness reads stdin and writes stdout, so the same `main.c` runs on the Cortex-M targets of
`firmware_sim.build` / `firmware_sim.run` (semihosting stdin/stdout).

Stream format (native byte order: little-endian on the host and on Cortex-M), one record per sequence:

    stdin:  int32 T, then T steps of F activations (int8 or int16, the model's activation type);
            the harness calls <name>_reset before each record's first step (the reset marker)
    stdout: per step, C logits then H state values per layer (the same activation type): the step's
            `logits` and every `lK.h_new`

Records follow each other until end of input, so sequences of any length share one run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edgegru.errors import EdgeGRUError
from edgegru.quantize import QuantizedModel
from firmware_sim.codegen import generate_c, kernel_sources

CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic")
DEFAULT_NAME = "edgegru_model"

HARNESS = """/* Stream harness for {name}: stdin/stdout format in firmware_sim/host.py. */
#include <stdio.h>

#include "{name}.h"
#ifdef EDGEGRU_MARKERS /* built by firmware_sim.build: one instruction-count window per step */
#include "edgegru_rt.h"
#define STEP_BEGIN() edgegru_mark_begin()
#define STEP_END() edgegru_mark_end()
#else
#define STEP_BEGIN() ((void)0)
#define STEP_END() ((void)0)
#endif

int main(void)
{{
    {name}_state_t state;
    {name}_act_t features[{upper}_INPUT_SIZE], logits[{upper}_NUM_CLASSES];
    int32_t length, t;
    while (fread(&length, sizeof length, 1, stdin) == 1) {{
        {name}_reset(&state);
        for (t = 0; t < length; ++t) {{
            if (fread(features, sizeof features, 1, stdin) != 1) {{
                fputs("truncated input\\n", stderr);
                return 1;
            }}
            STEP_BEGIN();
            {name}_step(&state, features, logits);
            STEP_END();
            fwrite(logits, sizeof logits, 1, stdout);
{state_writes}        }}
    }}
    return fflush(stdout) == 0 ? 0 : 1;
}}
"""


def harness_source(model: QuantizedModel, name: str = DEFAULT_NAME) -> str:
    """main.c: the stream harness for the model generated under `name`."""
    writes = "".join(f"            fwrite(state.{field}, sizeof state.{field}, 1, stdout);\n"
                     for field in (h_in.replace(".", "_") for h_in, _ in model.states))
    return HARNESS.format(name=name, upper=name.upper(), state_writes=writes)


def find_compiler() -> str:
    """The host C compiler: $CC, else gcc; EdgeGRUError naming the package when it is missing."""
    compiler = os.environ.get("CC") or "gcc"
    if shutil.which(compiler) is None:
        raise EdgeGRUError(f"no host C compiler '{compiler}' found; install gcc (apt-get install gcc) or set CC")
    return compiler


def write_sources(model: QuantizedModel, directory: Path, name: str = DEFAULT_NAME) -> list[Path]:
    """Generated model, kernels and harness into `directory`; returns the .c files (sorted)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = {**generate_c(model, name), **kernel_sources(), "main.c": harness_source(model, name)}
    for filename, text in files.items():
        (directory / filename).write_text(text)
    return sorted(directory / f for f in files if f.endswith(".c"))


def compile_host(sources: list[Path], output: Path, extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile and link with -Werror; EdgeGRUError with the compiler's messages on failure or warning."""
    command = [find_compiler(), *CFLAGS, *extra_flags, "-o", str(output), *map(str, sources)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or result.stderr.strip():
        raise EdgeGRUError(f"host build failed: {' '.join(command)}\n{result.stderr}")
    return output


def check_stream_input(model: QuantizedModel, x_q: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dtype = np.dtype(model.tensors["x"].dtype)
    x_q, lengths = np.asarray(x_q), np.asarray(lengths)
    if x_q.dtype != dtype or x_q.ndim != 3 or x_q.shape[2] != model.config["input_size"]:
        raise EdgeGRUError(f"x_q must be {dtype} [N, T, {model.config['input_size']}] (quantize_features), "
                           f"got {x_q.dtype} {list(x_q.shape)}")
    if lengths.shape != (len(x_q),) or (lengths < 0).any() or (lengths > x_q.shape[1]).any():
        raise EdgeGRUError(f"lengths must give one length in [0, {x_q.shape[1]}] per sequence")
    return x_q, lengths


def encode_stream(x_q: np.ndarray, lengths: np.ndarray) -> bytes:
    """x_q [N, T, F] (padded), lengths [N] -> the harness's stdin."""
    chunks = []
    for sequence, length in zip(x_q, lengths):
        chunks.append(np.array([int(length)], dtype="<i4").tobytes())
        chunks.append(np.ascontiguousarray(sequence[: int(length)]).astype(sequence.dtype.newbyteorder("<")).tobytes())
    return b"".join(chunks)


def decode_stream(model: QuantizedModel, raw: bytes, steps: int, lengths: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The harness's stdout -> (logits [N, steps, C], [state [N, steps, H] per layer]); steps not run
    (t >= lengths[i]) hold the tensor's zero point."""
    dtype = np.dtype(model.tensors["x"].dtype).newbyteorder("<")
    classes, hidden = model.config["num_classes"], model.config["hidden"]
    per_step = classes + len(model.states) * hidden
    values = np.frombuffer(raw, dtype=dtype)
    if values.size != per_step * int(lengths.sum()):
        raise EdgeGRUError(f"the C model wrote {values.size} values, expected {per_step * int(lengths.sum())}")
    records = values.reshape(-1, per_step).astype(dtype.newbyteorder("="))
    n = len(lengths)
    logits = np.full((n, steps, classes), model.tensors["logits"].zero_point, dtype=records.dtype)
    states = [np.full((n, steps, hidden), model.tensors[h_in].zero_point, dtype=records.dtype)
              for h_in, _ in model.states]
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    for i, length in enumerate(lengths):
        block = records[starts[i]: starts[i] + int(length)]
        logits[i, : int(length)] = block[:, :classes]
        for k, state in enumerate(states):
            state[i, : int(length)] = block[:, classes + k * hidden: classes + (k + 1) * hidden]
    return logits, states


def run_host(model: QuantizedModel, x_q: np.ndarray, lengths: np.ndarray, name: str = DEFAULT_NAME,
             build_dir: str | Path | None = None, extra_flags: tuple[str, ...] = ()
             ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run every sequence of x_q [N, T, F] (quantized, the model's activation dtype) through the C model.

    Returns (logits [N, T, C], [state [N, T, H] per layer]): step t of sequence i at [i, t] for
    t < lengths[i] (later steps hold the zero point).  `build_dir` keeps the sources and executable.
    """
    x_q, lengths = check_stream_input(model, x_q, lengths)
    with tempfile.TemporaryDirectory(prefix="edgegru_host_") as scratch:
        directory = Path(build_dir) if build_dir is not None else Path(scratch)
        executable = compile_host(write_sources(model, directory, name), directory / name, extra_flags)
        result = subprocess.run([str(executable)], input=encode_stream(x_q, lengths), capture_output=True)
        if result.returncode != 0:
            raise EdgeGRUError(f"the host C model failed ({result.returncode}): "
                               f"{result.stderr.decode(errors='replace').strip()}")
    return decode_stream(model, result.stdout, x_q.shape[1], lengths)
