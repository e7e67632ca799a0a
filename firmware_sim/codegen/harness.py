"""The stream harness (`main.c`) that runs a generated model over records read from stdin, and the
record format Python writes and reads.

`write_sources(model, directory)` writes the generated model (`model_source.generate_c`), the kernel
library and the harness; build them for any target with `firmware_sim.device.build.build`.  The same
program serves a batch run (every record written at once: `encode_stream`, `decode_stream`) and an
interactive one (one record at a time: `firmware_sim.step_session.StepSession`).

Stream format (native byte order: little-endian on the host and on Cortex-M):

    stdin:  records, each an int32 header, then its payload:
              -1      reset (`RESET`): <name>_reset, every state element to its zero point; no payload
              n > 0   n steps: n x F activations (int8 or int16, the model's activation type)
              0       an empty record
    stdout: per step, C logits then H state values per layer (the same activation type): the step's
            `logits` and every `lK.h_new`; a reset writes nothing

The program starts from the reset state and runs until end of input (exit 0); a negative header
other than -1 or a truncated step ends it with exit 1 and a message on stderr.  It reads stdin
unbuffered and flushes stdout at the end of every record, so it never waits for bytes past the
record it works on and the caller sees a record's output as soon as it is computed.  A batch stream
(`encode_stream`) is, per sequence, a reset record and one record of its steps.  Built with
EDGEGRU_MARKERS, each `<name>_step` call is one instruction-count window (`device.icount`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgegru.errors import EdgeGRUError
from edgegru.quantize import QuantizedModel
from firmware_sim.codegen.kernel_library import kernel_sources
from firmware_sim.codegen.model_source import generate_c

DEFAULT_NAME = "edgegru_model"
RESET = -1  # the header of a reset record

HARNESS = """/* Stream harness for {name}: the record format is in firmware_sim/codegen/harness.py. */
#include <stdio.h>

#include "{name}.h"
#ifdef EDGEGRU_MARKERS /* one instruction-count window per step (firmware_sim/device/icount.py) */
#include "edgegru_rt.h"
#define STEP_BEGIN() edgegru_mark_begin()
#define STEP_END() edgegru_mark_end()
#else
#define STEP_BEGIN() ((void)0)
#define STEP_END() ((void)0)
#endif

#define RESET_RECORD ({reset})

int main(void)
{{
    {name}_state_t state;
    {name}_act_t features[{upper}_INPUT_SIZE], logits[{upper}_NUM_CLASSES];
    int32_t header, t;
    /* Unbuffered: a read never waits for bytes past the current record. */
    if (setvbuf(stdin, NULL, _IONBF, 0) != 0) {{
        return 1;
    }}
    {name}_reset(&state);
    while (fread(&header, sizeof header, 1, stdin) == 1) {{
        if (header == RESET_RECORD) {{
            {name}_reset(&state);
        }} else if (header < 0) {{
            fputs("bad record header\\n", stderr);
            return 1;
        }}
        for (t = 0; t < header; ++t) {{
            if (fread(features, sizeof features, 1, stdin) != 1) {{
                fputs("truncated input\\n", stderr);
                return 1;
            }}
            STEP_BEGIN();
            {name}_step(&state, features, logits);
            STEP_END();
            fwrite(logits, sizeof logits, 1, stdout);
{state_writes}        }}
        if (fflush(stdout) != 0) {{
            return 1;
        }}
    }}
    return 0;
}}
"""


def harness_source(model: QuantizedModel, name: str = DEFAULT_NAME) -> str:
    """main.c: the stream harness for the model generated under `name`."""
    writes = "".join(f"            fwrite(state.{field}, sizeof state.{field}, 1, stdout);\n"
                     for field in (h_in.replace(".", "_") for h_in, _ in model.states))
    return HARNESS.format(name=name, upper=name.upper(), reset=RESET, state_writes=writes)


def write_sources(model: QuantizedModel, directory: Path, name: str = DEFAULT_NAME) -> list[Path]:
    """Generated model, kernels and harness into `directory`; returns the .c files (sorted).  Build them
    with `build(target, sources, include_dirs=[directory], ...)`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = {**generate_c(model, name), **kernel_sources(), "main.c": harness_source(model, name)}
    for filename, text in files.items():
        (directory / filename).write_text(text)
    return sorted(directory / f for f in files if f.endswith(".c"))


# --- records --------------------------------------------------------------------------------------


def _wire(dtype: np.dtype) -> np.dtype:
    return np.dtype(dtype).newbyteorder("<")


def reset_record() -> bytes:
    """The record that resets the state."""
    return np.array([RESET], dtype="<i4").tobytes()


def steps_record(steps: np.ndarray) -> bytes:
    """The record of `steps` [n, F] (the model's activation dtype); n = 0 gives an empty record."""
    steps = np.ascontiguousarray(steps)
    return np.array([len(steps)], dtype="<i4").tobytes() + steps.astype(_wire(steps.dtype)).tobytes()


def values_per_step(model: QuantizedModel) -> int:
    """Activations the harness writes per step: the logits and every layer's state."""
    return model.config["num_classes"] + len(model.states) * model.config["hidden"]


def output_bytes(model: QuantizedModel, steps: int) -> int:
    """Bytes the harness writes for `steps` steps."""
    return steps * values_per_step(model) * np.dtype(model.tensors["x"].dtype).itemsize


def decode_steps(model: QuantizedModel, raw: bytes) -> tuple[np.ndarray, list[np.ndarray]]:
    """The harness's output of n steps -> (logits [n, C], [state [n, H] per layer])."""
    dtype = np.dtype(model.tensors["x"].dtype)
    classes, hidden = model.config["num_classes"], model.config["hidden"]
    values = np.frombuffer(raw, dtype=_wire(dtype))
    per_step = values_per_step(model)
    if values.size % per_step:
        raise EdgeGRUError(f"the C model wrote {values.size} values, not a whole number of steps of {per_step}")
    records = values.reshape(-1, per_step).astype(dtype)
    states = [records[:, classes + k * hidden: classes + (k + 1) * hidden] for k in range(len(model.states))]
    return records[:, :classes], states


# --- batch streams --------------------------------------------------------------------------------


def check_stream_input(model: QuantizedModel, x_q: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x_q [N, T, F] in the model's activation dtype and lengths [N] in [0, T], or EdgeGRUError."""
    dtype = np.dtype(model.tensors["x"].dtype)
    x_q, lengths = np.asarray(x_q), np.asarray(lengths)
    if x_q.dtype != dtype or x_q.ndim != 3 or x_q.shape[2] != model.config["input_size"]:
        raise EdgeGRUError(f"x_q must be {dtype} [N, T, {model.config['input_size']}] (quantize_features), "
                           f"got {x_q.dtype} {list(x_q.shape)}")
    if lengths.shape != (len(x_q),) or (lengths < 0).any() or (lengths > x_q.shape[1]).any():
        raise EdgeGRUError(f"lengths must give one length in [0, {x_q.shape[1]}] per sequence")
    return x_q, lengths


def encode_stream(x_q: np.ndarray, lengths: np.ndarray) -> bytes:
    """x_q [N, T, F] (padded), lengths [N] -> the harness's stdin: per sequence, a reset record and the
    record of its steps."""
    chunks = []
    for sequence, length in zip(x_q, lengths):
        chunks.append(reset_record())
        if int(length):
            chunks.append(steps_record(sequence[: int(length)]))
    return b"".join(chunks)


def decode_stream(model: QuantizedModel, raw: bytes, steps: int, lengths: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The harness's stdout -> (logits [N, steps, C], [state [N, steps, H] per layer]); steps not run
    (t >= lengths[i]) hold the tensor's zero point."""
    lengths = np.asarray(lengths)
    expected = output_bytes(model, int(lengths.sum()))
    if len(raw) != expected:
        raise EdgeGRUError(f"the C model wrote {len(raw)} bytes, expected {expected} "
                           f"({int(lengths.sum())} steps of {values_per_step(model)} values)")
    step_logits, step_states = decode_steps(model, raw)
    n = len(lengths)
    logits = np.full((n, steps, model.config["num_classes"]), model.tensors["logits"].zero_point,
                     dtype=step_logits.dtype)
    states = [np.full((n, steps, model.config["hidden"]), model.tensors[h_in].zero_point, dtype=step_logits.dtype)
              for h_in, _ in model.states]
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    for i, length in enumerate(lengths):
        block = slice(starts[i], starts[i] + int(length))
        logits[i, : int(length)] = step_logits[block]
        for state, produced in zip(states, step_states):
            state[i, : int(length)] = produced[block]
    return logits, states
