"""Two benchmarks of `edgegru bench`, side by side in one run, as ratios.

`batch`: the whole test split in one batch: the golden model (`golden_predict`, every scheme) against
torch float (`train.predict`) on the same model and sequences; steps per second (test steps: the sum
of the sequence lengths), best of `REPEATS`, and golden / float.

`latency`: one sequence at a time (batch 1), the state fed back, through each backend running the
file a user deploys (`verify_stage.backend_step`: LiteRT, tflite-runtime, TFLite Micro, onnxruntime,
the C host build) and the golden step; only the step calls are timed (median and 99th percentile,
microseconds), over the test sequences up to `steps` steps.  A backend whose file is missing (not
exported, no C sources) is skipped with the command that writes it.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from edgegru.checkpoint import load_checkpoint
from edgegru.data import load_dataset
from edgegru.errors import EdgeGRUError
from edgegru.golden import golden_predict, golden_step_function, initial_states, quantize_features
from edgegru.quantize import QuantizedModel
from edgegru.stages.run_layout import RunLayout
from edgegru.stages.verify_stage import backend_step
from edgegru.stream_loop import stream
from edgegru.train import predict
from export.verify import BACKENDS

REPEATS = 3
LATENCY_BACKENDS = ("litert", "tflite-runtime", "tflm", "onnxruntime", "c-host")


def best_seconds(run, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def batch_bench(layout: RunLayout, models: dict[str, QuantizedModel]) -> str:
    """Golden batch evaluation against torch float, the whole test split at once."""
    checkpoint = load_checkpoint(layout.root)
    test = load_dataset(checkpoint.dataset).test
    steps = int(test.lengths.sum())
    seconds = {"torch float": best_seconds(lambda: predict(checkpoint.model, test, checkpoint.normalization))}
    for scheme, model in models.items():
        seconds[f"golden {scheme}"] = best_seconds(lambda model=model: golden_predict(model, test))
    rows = [["", "seconds", "steps per second", "/ torch float"]]
    for name, value in seconds.items():
        rows.append([name, f"{value:.3f}", f"{steps / value:,.0f}", f"{seconds['torch float'] / value:.3f}"])
    return (table(rows) + f"\n\n{len(test):,} test sequences, {steps:,} steps, one batch; best of {REPEATS}; "
            f"torch threads {torch.get_num_threads()}")


def timed_steps(step, model: QuantizedModel, x_q: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Nanoseconds of every step call, sequence by sequence from the initial state (batch 1)."""
    times = []

    def timed(x_t, states):
        start = time.perf_counter_ns()
        outputs = step(x_t, states)
        times.append(time.perf_counter_ns() - start)
        return outputs

    for i in range(len(lengths)):
        stream(timed, initial_states(model, 1), x_q[i: i + 1], lengths[i: i + 1])
    return np.array(times)


def latency_bench(layout: RunLayout, model: QuantizedModel, steps: int) -> str:
    """Per-step latency of the golden step and of each deployed backend, batch 1."""
    test = load_dataset(load_checkpoint(layout.root).dataset).test
    count = int(np.searchsorted(np.cumsum(test.lengths), steps)) + 1
    x_q, lengths = quantize_features(model, test.x[:count]), test.lengths[:count]
    measured = {"golden (Python)": timed_steps(golden_step_function(model), model, x_q, lengths)}
    skipped = []
    for name in LATENCY_BACKENDS:
        try:
            with backend_step(layout, model, BACKENDS[name]) as step:
                measured[name] = timed_steps(step, model, x_q, lengths)
        except EdgeGRUError as error:
            skipped.append(f"{name}: skipped: {error}")
    golden = np.median(measured["golden (Python)"])
    rows = [["", "median us/step", "p99 us/step", "x golden speed"]]
    for name, times in measured.items():
        rows.append([name, f"{np.median(times) / 1e3:.1f}", f"{np.percentile(times, 99) / 1e3:.1f}",
                     f"{golden / np.median(times):.2f}"])
    return "\n".join([table(rows), "", f"{count} test sequences, {int(lengths.sum()):,} steps each backend, batch 1, "
                      "state fed back; the step call alone is timed", *skipped])
