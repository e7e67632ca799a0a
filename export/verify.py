"""Verification: every backend, fed every test sequence step by step, against the golden model.

Each backend runs the exported one-step model with its own state fed back (as on a device); the
golden model runs the same sequences in that backend's rounding.  Every element of every output of
every step is compared: `mismatches` counts differing elements, `max_abs_lsb` is the largest
difference in output LSBs, `accuracy` is the backend's own classification accuracy.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from tqdm import tqdm

from edgegru.errors import EdgeGRUError
from edgegru.golden import initial_states, quantize_features, run_sequences
from edgegru.quantize import QuantizedModel
from edgegru.stream_loop import stream


@dataclass(frozen=True)
class Backend:
    name: str
    rounding: str  # the golden model's rounding profile this runtime should match
    exact_schemes: tuple[str, ...]  # schemes where 0 mismatches is required; elsewhere a measured tolerance
    deploys: str  # what it runs: "tflite" or "onnx" (the exported file), or "c" (the generated sources)
    runtime: str  # the runner (export.tflite_runtimes / export.onnx_runtimes) or firmware target that runs it


def tflite_step(model: QuantizedModel, runner) -> Callable:
    """Adapt a TFLite runner to the step interface, after checking its inputs fit the artifact."""
    states = model.states
    expected = {"x": model.tensor_widths["x"], **{h: model.tensor_widths[h] for h, _ in states}}
    for info in runner.inputs:
        if info.name not in expected or tuple(info.shape) != (1, expected[info.name]) or \
                np.dtype(info.dtype) != np.dtype(model.tensors[info.name].dtype):
            raise EdgeGRUError(f"{runner.backend}: model input {info.name!r} {tuple(info.shape)} {info.dtype} does not "
                               f"match the quantized artifact; re-export with `edgegru export`")

    def step(x_q, state_arrays):
        out = runner.run({"x": x_q, **{h: s for (h, _), s in zip(states, state_arrays)}})
        return out["logits"], [out[h_out] for _, h_out in states]
    return step


def onnx_step(model: QuantizedModel, run) -> Callable:
    names = [h_out for _, h_out in model.states]

    def step(x_q, state_arrays):
        out = run({"x": x_q, **{h: s for (h, _), s in zip(model.states, state_arrays)}})
        return out["logits"], [out[name] for name in names]
    return step


BOTH = ("int8", "int16x8")
# LiteRT's default path (XNNPACK for int8, its optimized kernels for int16) computes differently on Arm
# and on x86 (XNNPACK's int8 MUL): `litert` is checked against the profile of the machine it runs on.
LITERT_HOST_PROFILE = "litert-arm" if platform.machine().lower() in ("aarch64", "arm64") else "litert-x86"
BACKENDS = {b.name: b for b in (
    Backend("tflm", "double", BOTH, "tflite", "tflm"),
    Backend("tflite-runtime", "double", BOTH, "tflite", "tflite-runtime"),
    Backend("litert-ref", "single", BOTH, "tflite", "litert-ref"),
    Backend("litert", LITERT_HOST_PROFILE, BOTH, "tflite", "litert"),
    Backend("onnxruntime", "double", BOTH, "onnx", "onnxruntime"),
    Backend("onnx-reference", "double", BOTH, "onnx", "onnx-reference"),
    Backend("c-host", "double", BOTH, "c", "host"),
    Backend("cortex-m4", "double", BOTH, "c", "cortex-m4"),
    Backend("cortex-m55", "double", BOTH, "c", "cortex-m55"),
    Backend("litert-arm64", "litert-arm", BOTH, "tflite", "litert-arm64"),  # LiteRT's Arm build under QEMU
)}


def get_backends(names: list[str]) -> list[Backend]:
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise EdgeGRUError(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(BACKENDS)}")
    return [BACKENDS[n] for n in names]


def golden_trace(model: QuantizedModel, x_q: np.ndarray, lengths: np.ndarray, rounding: str) -> list[dict]:
    """Per step t: the golden outputs {"logits", "lK.h_new"...} for all sequences (batched)."""
    trace = []
    outputs = ["logits"] + [h_out for _, h_out in model.states]
    run_sequences(model, x_q, lengths, rounding, on_step=lambda t, tensors, active: trace.append(
        {name: tensors[name] for name in outputs}))
    return trace


def verification_streams(model: QuantizedModel, split, max_sequences: int | None = None):
    """(x_q [N, T, F], lengths [N], y [N]) of the first `max_sequences` sequences of `split`."""
    count = len(split) if max_sequences is None else min(len(split), max_sequences)
    return quantize_features(model, split.x[:count]), split.lengths[:count], split.y[:count]


def compare_with_golden(model: QuantizedModel, trace: list[dict], logits: np.ndarray, states: list[np.ndarray],
                        lengths: np.ndarray, y: np.ndarray) -> dict:
    """A backend's outputs (logits [N, T, C], one state [N, T, H] per layer) against the golden `trace`,
    every element of every valid step, and the backend's accuracy from its logits at each last step."""
    mismatches = elements = 0
    max_abs = 0
    outputs = [("logits", logits)] + [(h_out, s) for (_, h_out), s in zip(model.states, states)]
    for t, golden in enumerate(trace):
        active = t < lengths
        for name, produced in outputs:
            diff = np.abs(produced[active, t].astype(np.int64) - golden[name][active].astype(np.int64))
            mismatches += int((diff > 0).sum())
            elements += diff.size
            max_abs = max(max_abs, int(diff.max(initial=0)))
    final = logits[np.arange(len(lengths)), lengths - 1]
    return {"steps": int(lengths.sum()), "elements": elements, "mismatches": mismatches, "max_abs_lsb": max_abs,
            "bit_exact": mismatches == 0, "accuracy": float(np.mean(final.argmax(axis=1) == y))}


def stream_backend(model: QuantizedModel, step: Callable, x_q: np.ndarray, lengths: np.ndarray, name: str,
                   progress: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """Every sequence through a backend's `step`, one at a time, each from the initial state and with
    its own state fed back (`stream_loop.stream`; a backend that holds its state, like the C program,
    resets when handed the initial state).

    Returns logits [N, T, C] and one state [N, T, H] per layer (steps past a length stay zero).
    """
    batch, steps = x_q.shape[:2]
    widths = model.tensor_widths
    logits = np.zeros((batch, steps, widths["logits"]), dtype=x_q.dtype)
    states_out = [np.zeros((batch, steps, widths[h_out]), dtype=x_q.dtype) for _, h_out in model.states]

    def step_showing_states(x_t, states):
        step_logits, new_states = step(x_t, states)
        return (step_logits, new_states), new_states

    for i in tqdm(range(batch), desc=f"verify {name}", disable=not progress, unit="seq", leave=False):
        def store(t, outputs, active, i=i):
            step_logits, new_states = outputs
            logits[i, t] = step_logits[0]
            for stored, state in zip(states_out, new_states):
                stored[i, t] = state[0]
        stream(step_showing_states, initial_states(model, 1), x_q[i: i + 1], lengths[i: i + 1], store)
    return logits, states_out


def verify_backend(model: QuantizedModel, backend: Backend, step: Callable, x_q: np.ndarray, lengths: np.ndarray,
                   y: np.ndarray, trace: list[dict], progress: bool = True) -> dict:
    """Run every sequence through a backend's `step` and compare with the golden `trace`."""
    start = time.perf_counter()
    logits, states = stream_backend(model, step, x_q, lengths, backend.name, progress)
    return {"backend": backend.name, "rounding": backend.rounding,
            **compare_with_golden(model, trace, logits, states, lengths, y),
            "exact_required": model.scheme in backend.exact_schemes,
            "seconds": round(time.perf_counter() - start, 2)}


def golden_accuracy(traces: dict[str, list[dict]], lengths: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The golden model's accuracy in each rounding, from the logits at each sequence's last step."""
    accuracy = {}
    for rounding, trace in traces.items():
        last = np.stack([trace[int(length) - 1]["logits"][i] for i, length in enumerate(lengths)])
        accuracy[rounding] = float(np.mean(last.argmax(1) == y))
    return accuracy
