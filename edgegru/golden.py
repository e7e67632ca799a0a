"""The golden model: the quantized GRU step in integer-only numpy, exactly as an integer runtime computes it.

It evaluates the step graph (`step_graph.step_ops`) with the TFLite integer kernels of
`integer_ops`, vectorized over a batch.  No float is used inside a step; floats appear only when raw
features are quantized at the input boundary (`quantize_features`).

`rounding` selects how the runtime's requantization rounds (FULLY_CONNECTED, ADD, SUB, MUL): `double`
(TFLite Micro, tflite-runtime reference kernels) or `single` (LiteRT 2.x).
"""

from __future__ import annotations

import numpy as np

from edgegru import integer_ops
from edgegru.errors import EdgeGRUError
from edgegru.quantize import QuantizedModel
from edgegru.step_graph import run_ops
from edgegru.stream_loop import stream

# How each runtime family rounds, per op kind (measured against the runtimes, see docs/quantization.md):
# `double` = TFLite Micro and tflite-runtime's reference kernels; `single` = LiteRT 2.x, whose
# FULLY_CONNECTED rounds once, from a double product acc * real multiplier (`float`), while ADD, SUB
# and MUL still round twice.
ROUNDING_PROFILES = {
    "double": {"fully_connected": "double", "add": "double", "sub": "double", "mul": "double"},
    "single": {"fully_connected": "float", "add": "double", "sub": "double", "mul": "double"},
}


def integer_kernels(model: QuantizedModel, rounding: str) -> dict:
    if rounding not in ROUNDING_PROFILES:
        raise EdgeGRUError(f"unknown rounding '{rounding}'; choose one of {', '.join(ROUNDING_PROFILES)}")
    r = ROUNDING_PROFILES[rounding]
    p = model.op_params
    k = integer_ops.KERNELS[model.scheme_spec.activation]
    return {
        "fully_connected": lambda op, x: k.fully_connected(x, model.weights[op.weight], model.biases[op.weight],
                                                           p[op.output], rounding=r["fully_connected"]),
        "add": lambda op, a, b: k.add(a, b, p[op.output], rounding=r["add"]),
        "sub": lambda op, a, b: k.sub(a, b, p[op.output], rounding=r["sub"]),
        "mul": lambda op, a, b: k.mul(a, b, p[op.output], rounding=r["mul"]),
        "logistic": lambda op, a: k.logistic(a, p[op.output]),
        "tanh": lambda op, a: k.tanh(a, p[op.output]),
    }


def check_step_input(model: QuantizedModel, name: str, array, width: int, batch: int | None = None) -> np.ndarray:
    """Refuse anything but an integer array of the tensor's dtype and shape [B, width]."""
    dtype = np.dtype(model.tensors[name].dtype)
    array = np.asarray(array)
    if array.dtype != dtype:
        raise EdgeGRUError(f"step input '{name}' must be {dtype} (quantized), got {array.dtype}; "
                           f"quantize features with quantize_features()")
    if array.ndim != 2 or array.shape[1] != width or (batch is not None and array.shape[0] != batch):
        expected = f"[{batch if batch is not None else 'B'}, {width}]"
        raise EdgeGRUError(f"step input '{name}' must have shape {expected}, got {list(array.shape)}")
    return array


def initial_states(model: QuantizedModel, batch: int) -> list[np.ndarray]:
    """The zero state of every layer: the integer that represents 0.0 (its zero point)."""
    return [np.full((batch, model.config["hidden"]), model.tensors[h_in].zero_point, dtype=model.tensors[h_in].dtype)
            for h_in, _ in model.states]


def golden_step(model: QuantizedModel, x_q: np.ndarray, states: list[np.ndarray], rounding: str = "double",
                kernels: dict | None = None) -> tuple[np.ndarray, list[np.ndarray], dict]:
    """One step: x_q [B, F] and one state [B, H] per layer -> (logits [B, C], new states, all tensors)."""
    x_q = check_step_input(model, "x", x_q, model.config["input_size"])
    if len(states) != len(model.states):
        raise EdgeGRUError(f"expected {len(model.states)} state arrays (one per layer), got {len(states)}")
    inputs = {"x": x_q}
    for (h_in, _), state in zip(model.states, states):
        inputs[h_in] = check_step_input(model, h_in, state, model.config["hidden"], batch=len(x_q))
    tensors = run_ops(model.ops, inputs, kernels or integer_kernels(model, rounding))
    return tensors["logits"], [tensors[h_out] for _, h_out in model.states], tensors


def quantize_features(model: QuantizedModel, raw: np.ndarray) -> np.ndarray:
    """Raw features (the dataset's units) -> normalized -> quantized with tensor `x`'s parameters."""
    raw = np.asarray(raw, dtype=np.float32)
    if not np.isfinite(raw).all():
        raise EdgeGRUError("features contain NaN or inf")
    return model.tensors["x"].quantize(model.normalization.apply(raw))


def golden_step_function(model: QuantizedModel, rounding: str = "double"):
    """The golden step for `stream_loop.stream`: (x_q [B, F], states) -> (every tensor of the step, new states)."""
    kernels = integer_kernels(model, rounding)

    def step(x_q, states):
        _, new_states, tensors = golden_step(model, x_q, states, rounding, kernels)
        return tensors, new_states
    return step


def run_sequences(model: QuantizedModel, x_q: np.ndarray, lengths: np.ndarray, rounding: str = "double",
                  on_step=None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Stream quantized sequences [B, T, F] step by step; each row's state stops at its true length.

    Returns the logits at each row's last step and the final states.  `on_step(t, tensors, active)`,
    if given, sees every step's tensors (for verification and error measurement).
    """
    logits = np.zeros((len(x_q), model.config["num_classes"]), dtype=model.tensors["logits"].dtype)

    def keep_logits(t, tensors, active):
        nonlocal logits
        logits = np.where(active[:, None], tensors["logits"], logits)
        if on_step is not None:
            on_step(t, tensors, active)

    states = stream(golden_step_function(model, rounding), initial_states(model, len(x_q)), x_q, lengths, keep_logits)
    return logits, states


def golden_predict(model: QuantizedModel, split, rounding: str = "double") -> np.ndarray:
    """Predicted class per sequence of a data split."""
    logits, _ = run_sequences(model, quantize_features(model, split.x), split.lengths, rounding)
    return logits.argmax(axis=1)
