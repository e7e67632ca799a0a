"""Verification: every backend, fed every test sequence step by step, against the golden model.

Each backend runs the exported one-step model with its own state fed back (as on a device); the
golden model runs the same sequences in that backend's rounding.  Every element of every output of
every step is compared: `mismatches` counts differing elements, `max_abs_lsb` is the largest
difference in output LSBs, `accuracy` is the backend's own classification accuracy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from tqdm import tqdm

from edgegru.errors import EdgeGRUError
from edgegru.golden import initial_states, quantize_features, run_sequences
from edgegru.quantize import QuantizedModel


@dataclass(frozen=True)
class Backend:
    name: str
    rounding: str  # the golden model's rounding profile this runtime should match
    exact_schemes: tuple[str, ...]  # schemes where 0 mismatches is required; elsewhere a measured tolerance
    make_step: Callable[[QuantizedModel], Callable] | None  # model -> step(x_q [1, F], states) -> (logits, states)
    firmware_target: str | None = None  # generated C run as one program over all sequences (firmware_sim)


def tflite_step_factory(backend: str) -> Callable[[QuantizedModel], Callable]:
    def make(model: QuantizedModel):
        from export.tflite_export import quantized_step_tflite
        from export.tflite_runtimes import load_runner

        return tflite_step(model, load_runner(backend, quantized_step_tflite(model)))
    return make


def tflite_step(model: QuantizedModel, runner) -> Callable:
    """Adapt a TFLite runner to the step interface, after checking its inputs fit the artifact."""
    states = model.states
    expected = {"x": model.config["input_size"], **{h: model.config["hidden"] for h, _ in states}}
    for info in runner.inputs:
        if info.name not in expected or tuple(info.shape) != (1, expected[info.name]) or \
                np.dtype(info.dtype) != np.dtype(model.tensors[info.name].dtype):
            raise EdgeGRUError(f"{runner.backend}: model input {info.name!r} {tuple(info.shape)} {info.dtype} does not "
                               f"match the quantized artifact; re-export with `edgegru export`")

    def step(x_q, state_arrays):
        out = runner.run({"x": x_q, **{h: s for (h, _), s in zip(states, state_arrays)}})
        return out["logits"], [out[h_out] for _, h_out in states]
    return step


def onnx_step_factory(backend: str) -> Callable[[QuantizedModel], Callable]:
    def make(model: QuantizedModel):
        from export.onnx_integer import quantized_step_onnx
        from export.onnx_runtimes import load_onnx_runner

        return onnx_step(model, load_onnx_runner(backend, quantized_step_onnx(model).SerializeToString()))
    return make


def onnx_step(model: QuantizedModel, run) -> Callable:
    names = [h_out for _, h_out in model.states]

    def step(x_q, state_arrays):
        out = run({"x": x_q, **{h: s for (h, _), s in zip(model.states, state_arrays)}})
        return out["logits"], [out[name] for name in names]
    return step


BOTH = ("int8", "int16x8")
# XNNPACK (LiteRT's default) has its own arithmetic: there a measured tolerance stands in for
# bit-exactness.
BACKENDS = {
    "tflm": Backend("tflm", "double", BOTH, tflite_step_factory("tflm")),
    "tflite-runtime": Backend("tflite-runtime", "double", BOTH, tflite_step_factory("tflite-runtime")),
    "litert-ref": Backend("litert-ref", "single", BOTH, tflite_step_factory("litert-ref")),
    "litert": Backend("litert", "single", (), tflite_step_factory("litert")),
    "onnxruntime": Backend("onnxruntime", "double", BOTH, onnx_step_factory("onnxruntime")),
    "onnx-reference": Backend("onnx-reference", "double", BOTH, onnx_step_factory("onnx-reference")),
    "c-host": Backend("c-host", "double", BOTH, None, "host"),
    "cortex-m4": Backend("cortex-m4", "double", BOTH, None, "cortex-m4"),
    "cortex-m55": Backend("cortex-m55", "double", BOTH, None, "cortex-m55"),
}


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


def stream_steps(model: QuantizedModel, step: Callable, x_q: np.ndarray, lengths: np.ndarray, name: str,
                 progress: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """Every sequence through `step` one time step at a time, each with its own state fed back.

    Returns logits [N, T, C] and one state [N, T, H] per layer (steps past a length stay zero).
    """
    batch, steps = x_q.shape[:2]
    logits = np.zeros((batch, steps, model.config["num_classes"]), dtype=x_q.dtype)
    states_out = [np.zeros((batch, steps, model.config["hidden"]), dtype=x_q.dtype) for _ in model.states]
    for i in tqdm(range(batch), desc=f"verify {name}", disable=not progress, unit="seq", leave=False):
        states = initial_states(model, 1)
        for t in range(int(lengths[i])):
            logits[i, t], states = step(x_q[i : i + 1, t], states)
            for stored, state in zip(states_out, states):
                stored[i, t] = state[0]
    return logits, states_out


def verify_backend(model: QuantizedModel, backend: Backend, x_q: np.ndarray, lengths: np.ndarray, y: np.ndarray,
                   trace: list[dict], progress: bool = True) -> dict:
    """Run every sequence through `backend` and compare with the golden `trace`.

    Step backends (TFLite, ONNX) are fed one step at a time; firmware backends stream all sequences
    through the generated C program in one run (see firmware_sim.firmware_run).
    """
    start = time.perf_counter()
    if backend.firmware_target:
        import tempfile

        from firmware_sim.firmware_run import run_target

        with tempfile.TemporaryDirectory(prefix="edgegru-verify-") as scratch:
            logits, states, _ = run_target(model, backend.firmware_target, x_q, lengths, scratch)
    else:
        logits, states = stream_steps(model, backend.make_step(model), x_q, lengths, backend.name, progress)
    return {"backend": backend.name, "rounding": backend.rounding,
            **compare_with_golden(model, trace, logits, states, lengths, y),
            "exact_required": model.scheme in backend.exact_schemes,
            "seconds": round(time.perf_counter() - start, 2)}


def verify(model: QuantizedModel, backend_names: list[str], split, max_sequences: int | None = None,
           progress: bool = True) -> dict:
    """Verify each named backend on (the first `max_sequences` of) `split`; returns the report dict."""
    backends = get_backends(backend_names)
    x_q, lengths, y = verification_streams(model, split, max_sequences)
    traces, results = {}, {}
    for backend in backends:
        if backend.rounding not in traces:
            traces[backend.rounding] = golden_trace(model, x_q, lengths, backend.rounding)
        results[backend.name] = verify_backend(model, backend, x_q, lengths, y, traces[backend.rounding], progress)
    golden_accuracy = {}
    for rounding, trace in traces.items():
        last = np.stack([trace[int(length) - 1]["logits"][i] for i, length in enumerate(lengths)])
        golden_accuracy[rounding] = float(np.mean(last.argmax(1) == y))
    return {"scheme": model.scheme, "sequences": len(lengths), "golden_accuracy": golden_accuracy, "backends": results}
