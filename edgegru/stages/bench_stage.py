"""`edgegru bench`: the benchmarks that print figures, on a quantized run.

`batch` and `latency` (`bench_speed`): golden batch evaluation against torch float, and the per-step
latency of every deployed backend, side by side with ratios.

`firmware`: the generated C on the emulated Cortex-M cores, optimized and portable paths side by side
(whole step and mat-vec alone, exact instruction counts; `firmware_sim.bench`).  It needs the
Cortex-M toolchain; without it the benchmark is skipped with the reason, not failed.

`stream`: one long stream (1,000,000 steps by default) of realistic input, the state carried from
step to step (state policy none, batch 1, through `stream_loop.stream`), through the golden model, the
generated C on the host (a `StepSession` on the sources `edgegru firmware RUN --targets host` wrote;
skipped with the reason when they or the compiler are missing) and the float model.  The input is the
dataset's test recordings back to back, repeated to the step count (the test split's sequences back to
back for a dataset without recordings).  Per backend: steps per second, every layer's state range
(integer schemes: checked to stay inside the state dtype, and counted at its limits), the resident
memory over the stream (sampled every block of steps: flat when nothing accumulates), and a digest of
the logits per block of steps, so that golden and C host are compared bit for bit over the whole
stream without keeping any step's outputs (`on_step` copies each step into a fixed block buffer).
"""

from __future__ import annotations

import gc
import hashlib
import os
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgegru.artifact import load_artifact
from edgegru.calibrate import float_initial_states, float_step_function
from edgegru.checkpoint import load_checkpoint
from edgegru.data import Dataset, load_dataset
from edgegru.errors import EdgeGRUError
from edgegru.golden import golden_step_function, initial_states, quantize_features
from edgegru.quantize import QuantizedModel
from edgegru.stages.bench_speed import batch_bench, latency_bench
from edgegru.stages.firmware_stage import (
    available_targets,
    c_step_session,
    written_sources,
)
from edgegru.stages.run_layout import RunLayout
from edgegru.stream_loop import stream
from firmware_sim.bench import bench_firmware, format_bench

BENCHMARKS = ("batch", "latency", "firmware", "stream")
LATENCY_STEPS = 2_000
STREAM_STEPS = 1_000_000
BLOCK_STEPS = 10_000  # logits digest, state range and memory sample per block of steps


def bench_run(run_dir: Path, benchmarks: list[str], schemes: list[str], targets: list[str],
              steps: int, stream_steps: int = STREAM_STEPS, progress: bool = True,
              latency_steps: int = LATENCY_STEPS) -> Iterator[tuple[str, str]]:
    """Yields (title, table) per benchmark and scheme, or (title, reason) for one that was skipped.
    `steps`: random steps per firmware build; `stream_steps`: the length of the stream benchmark;
    `latency_steps`: test steps timed per backend."""
    layout = RunLayout(Path(run_dir))
    models = {scheme: load_artifact(layout.quant_dir(scheme)) for scheme in schemes}  # refuse a missing run first
    if "batch" in benchmarks:
        yield "batch: golden model vs torch float, the whole test split in one batch", batch_bench(layout, models)
    if "latency" in benchmarks:
        for scheme, model in models.items():
            yield (f"latency, {scheme}: microseconds per step of each deployed backend (batch 1)",
                   latency_bench(layout, model, latency_steps))
    if "firmware" in benchmarks:
        usable, skipped = available_targets(targets)
        for target, reason in skipped.items():
            yield f"firmware on {target}: skipped", reason
        for scheme, model in models.items():
            if usable:
                yield (f"firmware, {scheme}: optimized vs portable C (instructions, exact)",
                       format_bench(bench_firmware(model, tuple(usable), steps=steps)))
    if "stream" in benchmarks:
        bench = StreamBench(layout, stream_steps, progress=progress)
        for scheme, model in models.items():
            yield (f"stream, {scheme}: {stream_steps:,} steps, state carried (golden, C host, float)",
                   format_stream_bench(bench.run(model)))


# --- the stream benchmark ------------------------------------------------------------------------


def stream_base(dataset: Dataset) -> tuple[np.ndarray, str]:
    """The raw signal [T, F] a long stream repeats, and what it is: the test recordings back to back, or,
    for a dataset without recordings, the test split's sequences (each to its true length) back to back."""
    recordings = dataset.recordings.get("test", []) if dataset.recordings else []
    if recordings:
        base = np.concatenate([r.signal for r in recordings]).astype(np.float32)
        return base, f"{dataset.name}: the {len(recordings)} test recordings back to back ({len(base):,} steps)"
    split = dataset.test
    base = np.concatenate([x[:length] for x, length in zip(split.x, split.lengths)]).astype(np.float32)
    return base, (f"{dataset.name} has no recordings: the test split's {len(split)} sequences back to back "
                  f"({len(base):,} steps)")


def repeated(base: np.ndarray, steps: int) -> np.ndarray:
    """base [T, F] repeated (and cut) to one row of `steps` steps: [1, steps, F]."""
    return np.resize(base, (steps, base.shape[1]))[None]


def logits_only(step):
    """A step that returns every tensor (golden, float), reduced to the logits."""
    def reduced(x_t, states):
        tensors, new_states = step(x_t, states)
        return tensors["logits"], new_states
    return reduced


def resident_bytes() -> int | None:
    """This process's resident memory now (Linux /proc), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_resident_bytes() -> int:
    """The peak resident memory of this process so far (ru_maxrss: kilobytes on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if os.uname().sysname == "Darwin" else peak * 1024


@dataclass
class StreamResult:
    backend: str
    steps: int
    hidden: int
    seconds: float
    state_min: list[float]  # per layer
    state_max: list[float]
    state_dtype: str
    at_limits: list[int] | None  # per layer: state elements equal to the dtype's min or max (integer only)
    state_real: list[tuple[float, float]] | None  # integer: the range as real values (scale, zero point)
    rss_growth: int | None  # bytes: largest sampled resident memory during the stream minus before it
    peak_rss_growth: int  # bytes: ru_maxrss after minus before
    block: int  # steps per block
    block_digests: list[str]  # sha256 of the logits of each block of steps
    digest: str  # sha256 of every step's logits, in order

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else float("inf")


class _Watch:
    """The stream's on_step: each step's logits and states are copied into fixed block buffers; a full
    block updates the digests, the state ranges and counts, and samples the resident memory."""

    def __init__(self, num_classes: int, hidden: int, layers: int, logits_dtype, state_dtype, block: int,
                 limits: tuple[int, int] | None, progress: tqdm | None):
        self.block, self.limits, self.progress = block, limits, progress
        self.logits = np.zeros((block, num_classes), dtype=logits_dtype)
        self.states = [np.zeros((block, hidden), dtype=state_dtype) for _ in range(layers)]
        self.filled = 0
        self.digest = hashlib.sha256()
        self.block_digests: list[str] = []
        self.minimum = [np.inf] * layers
        self.maximum = [-np.inf] * layers
        self.at_limits = [0] * layers
        self.rss_start = resident_bytes()
        self.rss_max = self.rss_start

    def __call__(self, t: int, outputs, active) -> None:
        logits, states = outputs
        row = self.filled
        self.logits[row] = logits[0]
        for buffer, state in zip(self.states, states):
            buffer[row] = state[0]
        self.filled = row + 1
        if self.filled == self.block:
            self.flush()

    def flush(self) -> None:
        if not self.filled:
            return
        logits = np.ascontiguousarray(self.logits[:self.filled])
        self.digest.update(logits.tobytes())
        self.block_digests.append(hashlib.sha256(logits.tobytes()).hexdigest())
        for k, buffer in enumerate(self.states):
            values = buffer[:self.filled]
            self.minimum[k] = min(self.minimum[k], values.min().item())
            self.maximum[k] = max(self.maximum[k], values.max().item())
            if self.limits is not None:
                self.at_limits[k] += int(np.count_nonzero((values == self.limits[0]) | (values == self.limits[1])))
        if self.progress is not None:
            self.progress.update(self.filled)
        self.filled = 0
        rss = resident_bytes()
        if rss is not None and self.rss_max is not None:
            self.rss_max = max(self.rss_max, rss)


def measure_stream(backend: str, step, initial: list[np.ndarray], x: np.ndarray, num_classes: int, logits_dtype,
                   state_dtype, integer: QuantizedModel | None = None, block: int = BLOCK_STEPS,
                   progress: bool = False) -> StreamResult:
    """Stream x [1, T, F] through `step` (`(x_t, states) -> (logits, states)`) from `initial`, the state
    carried (no reset), and measure it (`StreamResult`).  `integer`: the quantized model of an integer
    backend, whose state dtype is checked and whose limits are counted."""
    steps, layers, hidden = x.shape[1], len(initial), initial[0].shape[1]
    limits = None
    if integer is not None:
        info = np.iinfo(state_dtype)
        limits = (int(info.min), int(info.max))

    def watched(x_t, states):
        logits, new_states = step(x_t, states)
        return (logits, new_states), new_states

    bar = tqdm(total=steps, desc=f"stream {backend}", unit="step", unit_scale=True, leave=False) if progress else None
    gc.collect()
    peak_before = peak_resident_bytes()
    watch = _Watch(num_classes, hidden, layers, logits_dtype, state_dtype, block, limits, bar)
    start = time.perf_counter()
    final = stream(watched, initial, x, np.array([steps]), watch)
    seconds = time.perf_counter() - start
    watch.flush()
    peak_growth = peak_resident_bytes() - peak_before
    if bar is not None:
        bar.close()
    state_real = None
    if integer is not None:
        for k, state in enumerate(final):
            if state.dtype != np.dtype(state_dtype):
                raise EdgeGRUError(f"{backend}: layer {k}'s state came back as {state.dtype}, "
                                   f"not {np.dtype(state_dtype)}")
            if not limits[0] <= watch.minimum[k] <= watch.maximum[k] <= limits[1]:
                raise EdgeGRUError(f"{backend}: layer {k}'s state left {np.dtype(state_dtype)}: "
                                   f"[{watch.minimum[k]}, {watch.maximum[k]}]")
        quants = [integer.tensors[h_in] for h_in, _ in integer.states]
        state_real = [(float(q.dequantize(np.array(lo))), float(q.dequantize(np.array(hi))))
                      for q, lo, hi in zip(quants, watch.minimum, watch.maximum)]
    return StreamResult(
        backend=backend, steps=steps, hidden=hidden, seconds=seconds, state_min=list(watch.minimum),
        state_max=list(watch.maximum),
        state_dtype=str(np.dtype(state_dtype)), at_limits=watch.at_limits if integer is not None else None,
        state_real=state_real,
        rss_growth=None if watch.rss_start is None else watch.rss_max - watch.rss_start,
        peak_rss_growth=peak_growth, block=block, block_digests=watch.block_digests,
        digest=watch.digest.hexdigest())


@dataclass
class StreamBench:
    """The stream benchmark of one run: the input is built once, the float model measured once and shown
    beside every scheme."""

    layout: RunLayout
    steps: int = STREAM_STEPS
    progress: bool = False
    block: int = BLOCK_STEPS

    def __post_init__(self):
        if self.steps < 1:
            raise EdgeGRUError(f"the stream benchmark needs at least one step, got {self.steps}")
        self.checkpoint = load_checkpoint(self.layout.root)
        self.base, self.source = stream_base(load_dataset(self.checkpoint.dataset))
        self._float: StreamResult | None = None

    def run(self, model: QuantizedModel) -> dict:
        """{"input": what was streamed, "scheme", "golden", "c_host" (or None) with "c_host_skipped" (the
        reason), "float"}: StreamResults."""
        x_q = repeated(quantize_features(model, self.base), self.steps)
        num_classes = model.config["num_classes"]
        logits_dtype, state_dtype = np.dtype(model.tensors["logits"].dtype), np.dtype(model.tensors["l0.h"].dtype)

        golden = measure_stream("golden", logits_only(golden_step_function(model)), initial_states(model, 1), x_q,
                                num_classes, logits_dtype, state_dtype, model, self.block, self.progress)
        c_host, skipped = None, None
        usable, missing = available_targets(["host"])
        if not usable:
            skipped = missing["host"]
        else:
            try:
                written_sources(self.layout, model.scheme)
            except EdgeGRUError as error:
                skipped = f"{error} (with --targets host)"
        if skipped is None:
            with c_step_session(self.layout, model, "host") as (session, _exe):
                c_host = measure_stream("C host", session.step_function(), initial_states(model, 1), x_q,
                                        num_classes, logits_dtype, state_dtype, model, self.block, self.progress)
        del x_q
        return {"input": f"{self.source}, repeated to {self.steps:,} steps", "scheme": model.scheme,
                "golden": golden, "c_host": c_host, "c_host_skipped": skipped, "float": self.float_result()}

    def float_result(self) -> StreamResult:
        if self._float is None:
            model = self.checkpoint.model
            x = repeated(self.checkpoint.normalization.apply(self.base).astype(np.float64), self.steps)
            self._float = measure_stream("float", logits_only(float_step_function(model)),
                                         float_initial_states(model, 1), x, model.config.num_classes, np.float64,
                                         np.float64, None, self.block, self.progress)
        return self._float


def logits_comparison(golden: StreamResult, c_host: StreamResult) -> tuple[bool, str]:
    """(identical, a sentence): golden vs C host logits, block digest by block digest."""
    blocks = len(golden.block_digests)
    same = sum(a == b for a, b in zip(golden.block_digests, c_host.block_digests))
    if golden.digest == c_host.digest and golden.steps == c_host.steps:
        return True, (f"golden vs C host logits: bit-identical over all {golden.steps:,} steps "
                      f"({same} of {blocks} blocks of up to {golden.block:,} steps; sha256 {golden.digest[:16]})")
    first = next((i for i, (a, b) in enumerate(zip(golden.block_digests, c_host.block_digests)) if a != b), None)
    where = "" if first is None else f"; the first differing block starts at step {first * golden.block:,}"
    return False, f"golden vs C host logits: DIFFER ({same} of {blocks} blocks identical{where})"


def _megabytes(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:+.1f} MB"


def format_stream_bench(result: dict) -> str:
    """One table, a column per backend, then the speed ratios and the golden vs C host comparison."""
    columns = [("golden", result["golden"]), ("C host", result["c_host"]), ("float", result["float"])]
    columns = [(name, r) for name, r in columns if r is not None]
    scheme = result["scheme"]
    header = ["", *(f"{name} ({scheme})" if name != "float" else "float" for name, _ in columns)]
    rows = [header,
            ["steps per second", *(f"{r.steps_per_second:,.0f}" for _, r in columns)],
            ["microseconds per step", *(f"{1e6 * r.seconds / r.steps:.1f}" for _, r in columns)],
            ["seconds", *(f"{r.seconds:.1f}" for _, r in columns)]]
    layers = len(columns[0][1].state_min)
    for k in range(layers):
        rows.append([f"layer {k} state range",
                     *(f"[{r.state_min[k]}, {r.state_max[k]}] {r.state_dtype}" if r.at_limits is not None
                       else f"[{r.state_min[k]:.4f}, {r.state_max[k]:.4f}]" for _, r in columns)])
        rows.append([f"layer {k} state range, real",
                     *(f"[{r.state_real[k][0]:.4f}, {r.state_real[k][1]:.4f}]" if r.state_real is not None
                       else f"[{r.state_min[k]:.4f}, {r.state_max[k]:.4f}]" for _, r in columns)])
        rows.append([f"layer {k} at dtype limits",
                     *(("no (0 elements)" if not r.at_limits[k]
                        else f"yes ({r.at_limits[k]:,} of {r.steps * r.hidden:,} elements)")
                       if r.at_limits is not None else "-" for _, r in columns)])
    rows.append(["resident memory growth", *(_megabytes(r.rss_growth) for _, r in columns)])
    rows.append(["peak resident growth", *(_megabytes(r.peak_rss_growth) for _, r in columns)])
    rows.append(["logits sha256", *(r.digest[:16] for _, r in columns)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def render(row: list[str]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

    lines = [render(row).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    golden, c_host, floating = result["golden"], result["c_host"], result["float"]
    notes = [f"input: {result['input']} (batch 1, state policy none)"]
    if c_host is not None:
        notes.append(f"C host / golden steps per second: {c_host.steps_per_second / golden.steps_per_second:.2f}x")
    notes.append(f"golden / float steps per second: {golden.steps_per_second / floating.steps_per_second:.2f}x")
    if c_host is not None:
        notes.append(logits_comparison(golden, c_host)[1])
    else:
        notes.append(f"C host: skipped: {result['c_host_skipped']}")
    notes.append("memory: resident size sampled every block of steps during the stream, minus before it "
                 "(the C host's own process not included); peak: ru_maxrss after minus before")
    return "\n".join(lines + [""] + notes)

