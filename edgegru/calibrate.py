"""Calibration: the value range of every tensor of the step graph, observed on real data.

The float model is run step by step through the same graph the integer model uses
(`step_graph.step_ops`), with each layer's state fed back from step to step as in deployment, over
sequences of the training split.  Ranges are then chosen per tensor by one of:

- `minmax`: the observed minimum and maximum;
- `percentile`: the 0.01th and 99.99th percentiles (clips rare outliers);
- `mse`: the symmetric-or-asymmetric clip range, from 100 shrinkings of the observed range, whose
  quantize-dequantize mean squared error on the observations is smallest.

Every range includes 0 so that zero is exactly representable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgegru.data import Normalization, Split
from edgegru.errors import EdgeGRUError
from edgegru.step_graph import float_weights, run_ops, state_names, step_ops
from edgegru.stream_loop import stream

CALIBRATION_METHODS = ("minmax", "percentile", "mse")
PERCENTILE = 99.99
SAMPLES_PER_TENSOR = 200_000


@dataclass(frozen=True)
class Observation:
    minimum: float
    maximum: float
    samples: np.ndarray  # float32, a uniform subsample of every observed value


def float_kernels(weights: dict) -> dict:
    """Float64 implementations of the graph's op kinds, for calibration and reference."""
    def fully_connected(op, x):
        w, b = weights[op.weight]
        return x @ w.T + b

    return {
        "fully_connected": fully_connected,
        "add": lambda op, a, b: a + b,
        "sub": lambda op, a, b: a - b,
        "mul": lambda op, a, b: a * b,
        "logistic": lambda op, a: 1.0 / (1.0 + np.exp(-a)),
        "tanh": lambda op, a: np.tanh(a),
    }


def float_step_function(model):
    """The float64 step graph of a trained model for `stream_loop.stream`:
    (x [B, F] normalized, states) -> (every tensor of the step, new states)."""
    config = model.config
    ops = step_ops(config.variant, config.layers)
    kernels = float_kernels(float_weights(model))
    pairs = state_names(config.layers)

    def step(x, states):
        tensors = run_ops(ops, {"x": x, **{h_in: s for (h_in, _), s in zip(pairs, states)}}, kernels)
        return tensors, [tensors[h_out] for _, h_out in pairs]
    return step


def float_initial_states(model, batch: int) -> list[np.ndarray]:
    return [np.zeros((batch, model.config.hidden)) for _ in range(model.config.layers)]


def observe(model, split: Split, normalization: Normalization, max_sequences: int = 256, seed: int = 0) -> dict[str, Observation]:
    """Run the float step graph over (up to `max_sequences` of) `split` and record every tensor."""
    if len(split) == 0:
        raise EdgeGRUError("the calibration set is empty; calibrate on a split with at least one sequence")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(split), min(len(split), max_sequences), replace=False))
    x_all = normalization.apply(split.x[rows]).astype(np.float64)
    seen: dict[str, list[np.ndarray]] = {}

    def record(t, tensors, active):
        for name, value in tensors.items():
            seen.setdefault(name, []).append(value[active].ravel().astype(np.float32))

    stream(float_step_function(model), float_initial_states(model, len(rows)), x_all, split.lengths[rows], record)
    observations = {}
    for name, chunks in seen.items():
        values = np.concatenate(chunks)
        if not np.isfinite(values).all():
            raise EdgeGRUError(f"calibration: tensor {name} took NaN or inf values; check the model and data")
        samples = values if len(values) <= SAMPLES_PER_TENSOR else rng.choice(values, SAMPLES_PER_TENSOR, replace=False)
        observations[name] = Observation(float(values.min()), float(values.max()), samples)
    return observations


def choose_range(observation: Observation, method: str, levels: int, symmetric: bool) -> tuple[float, float]:
    """(low, high) real range, containing 0, to map onto `levels` integer steps."""
    if method not in CALIBRATION_METHODS:
        raise EdgeGRUError(f"unknown calibration '{method}'; choose one of {', '.join(CALIBRATION_METHODS)}")
    low, high = observation.minimum, observation.maximum
    if method == "percentile":
        low, high = np.percentile(observation.samples, [100 - PERCENTILE, PERCENTILE])
    elif method == "mse":
        low, high = _mse_range(observation.samples, low, high, levels, symmetric)
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    if symmetric:
        low, high = -max(-low, high), max(-low, high)
    if high - low < 1e-8:  # a constant-zero tensor: any small range represents it exactly
        low, high = (-1e-3, 1e-3) if symmetric else (0.0, 1e-3)
    return low, high


def _mse_range(samples, low, high, levels, symmetric) -> tuple[float, float]:
    best, best_error = (low, high), np.inf
    for shrink in np.linspace(1.0, 0.2, 100):
        lo, hi = min(low * shrink, 0.0), max(high * shrink, 0.0)
        if symmetric:
            lo, hi = -max(-lo, hi), max(-lo, hi)
        scale = max(hi - lo, 1e-12) / (levels - 1)
        dequantized = np.clip(np.round((samples - lo) / scale), 0, levels - 1) * scale + lo
        error = float(np.mean((dequantized - samples) ** 2))
        if error < best_error:
            best, best_error = (lo, hi), error
    return best
