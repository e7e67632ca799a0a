"""How far the integer state drifts from the float state, in LSB of the state tensor."""

from __future__ import annotations

import numpy as np

from edgegru.calibrate import float_initial_states, float_step_function
from edgegru.data import Split
from edgegru.golden import golden_step_function, initial_states, quantize_features
from edgegru.quantize import QuantizedModel
from edgegru.stream_loop import stream


def state_trace(step, states, x: np.ndarray, lengths: np.ndarray, state_outputs: list[str]) -> list[list[np.ndarray]]:
    """Per layer, the new state of every live row at every step, concatenated in step order."""
    trace = [[] for _ in state_outputs]

    def record(t, tensors, active):
        for k, name in enumerate(state_outputs):
            trace[k].append(tensors[name][active])
    stream(step, states, x, lengths, record)
    return [np.concatenate(chunks) for chunks in trace]


def state_error_lsb(model, qmodel: QuantizedModel, split: Split, rounding: str, max_sequences: int = 128) -> dict:
    """Per-step error of the integer state against the float state (each fed back on its own), in LSB.

    The float model runs the same step graph in float64; the error of layer K at step t is
    |s_h * (h_q - zp_h) - h_float| / s_h over the valid steps of up to `max_sequences` test sequences.
    """
    rows = slice(0, min(len(split), max_sequences))
    x, lengths = split.x[rows], split.lengths[rows]
    outputs = [h_out for _, h_out in qmodel.states]
    quantized = state_trace(golden_step_function(qmodel, rounding), initial_states(qmodel, len(x)),
                            quantize_features(qmodel, x), lengths, outputs)
    real = state_trace(float_step_function(model), float_initial_states(model, len(x)),
                       qmodel.normalization.apply(x).astype(np.float64), lengths, outputs)
    per_layer = []
    for (h_in, _), q, f in zip(qmodel.states, quantized, real):
        quant = qmodel.tensors[h_in]
        per_layer.append((np.abs(quant.dequantize(q) - f) / quant.scale).ravel())
    return {
        "mean": [round(float(e.mean()), 3) for e in per_layer],
        "p99": [round(float(np.percentile(e, 99)), 3) for e in per_layer],
        "max": [round(float(e.max()), 3) for e in per_layer],
    }
