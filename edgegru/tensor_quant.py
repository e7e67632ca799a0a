"""Quantization of single tensors: the affine map real = scale * (q - zero_point), and weights.

Schemes (see docs/quantization.md):
- `int8`: activations int8 asymmetric (zero point in [-128, 127]); weights int8 symmetric per output
  channel in [-127, 127]; bias int32 at scale s_in * s_w[c].
- `int16x8`: activations int16 symmetric (zero point 0, [-32767, 32767] used); weights as int8; bias
  int64 at scale s_in * s_w[c].
Outputs of LOGISTIC and TANH are fixed by the runtimes, not calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgegru.errors import EdgeGRUError

WEIGHT_MAX = 127  # int8 weights use [-127, 127] so that negation never overflows
# One scale per output channel (the default), or one per weight matrix: 12 bytes less per channel in a
# .tflite (its float32 scale and int64 zero point), for some precision.
WEIGHT_GRANULARITIES = ("per-channel", "per-tensor")
DEFAULT_WEIGHTS = "per-channel"


@dataclass(frozen=True)
class Scheme:
    """Everything that differs between the schemes, resolved once from the name (`get_scheme`): code
    below the command line reads these attributes and never compares scheme names."""

    name: str
    activation: str  # numpy dtype name of activations and state
    symmetric: bool  # zero point 0 and [-qmax, qmax] (int16), or asymmetric over the whole range (int8)
    bias: str  # numpy dtype name of FULLY_CONNECTED biases
    add_left_shift: int  # headroom bits ADD/SUB shift their inputs by before rescaling them (TFLite's)
    logistic_output: tuple[float, int]  # (scale, zero point) of LOGISTIC outputs, fixed by the TFLite spec
    tanh_output: tuple[float, int]  # (scale, zero point) of TANH outputs, fixed by the TFLite spec
    lookup_activations: bool  # LOGISTIC/TANH as 256-entry tables (int8) or interpolated (int16)
    q15_fully_connected: bool  # 16x8 FULLY_CONNECTED: double rounding reduces the multiplier to Q15

    @property
    def qmin(self) -> int:
        return int(np.iinfo(self.activation).min) + (1 if self.symmetric else 0)

    @property
    def qmax(self) -> int:
        return int(np.iinfo(self.activation).max)

    def fixed_output(self, kind: str) -> tuple[float, int] | None:
        """(scale, zero point) of an op kind's output if the runtimes fix it (LOGISTIC, TANH), else None."""
        return {"logistic": self.logistic_output, "tanh": self.tanh_output}.get(kind)


# The one place the schemes' constants are written down.  LOGISTIC/TANH outputs: the runtimes compute
# only these correctly (see docs/runtimes.md); the int16 ones are the Q0.15 the kernels produce.
SCHEMES = {
    "int8": Scheme("int8", "int8", symmetric=False, bias="int32", add_left_shift=20,
                   logistic_output=(1.0 / 256, -128), tanh_output=(1.0 / 128, 0),
                   lookup_activations=True, q15_fully_connected=False),
    "int16x8": Scheme("int16x8", "int16", symmetric=True, bias="int64", add_left_shift=15,
                      logistic_output=(1.0 / 32768, 0), tanh_output=(1.0 / 32768, 0),
                      lookup_activations=False, q15_fully_connected=True),
}


def get_scheme(name: str) -> Scheme:
    if name not in SCHEMES:
        raise EdgeGRUError(f"unknown scheme '{name}'; choose one of {', '.join(SCHEMES)}")
    return SCHEMES[name]


@dataclass(frozen=True)
class TensorQuant:
    """real = scale * (q - zero_point), q of dtype `dtype`."""

    scale: float
    zero_point: int
    dtype: str

    def quantize(self, real: np.ndarray) -> np.ndarray:
        """Float -> integer, rounding half away from zero, saturating (the input boundary only)."""
        info = np.iinfo(self.dtype)
        q = np.round(np.asarray(real, dtype=np.float64) / self.scale) + self.zero_point
        return np.clip(q, info.min, info.max).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (q.astype(np.float64) - self.zero_point) * self.scale


def float32_scale(scale: float) -> float:
    """Scales are kept float32-representable: a .tflite file stores them as float32, and the runtimes
    derive their multipliers from that value, so the golden model must too."""
    return float(np.float32(scale))


def tensor_quant_from_range(low: float, high: float, scheme: Scheme) -> TensorQuant:
    """Affine parameters covering [low, high] (which contains 0) on the scheme's activation grid."""
    if scheme.symmetric:
        return TensorQuant(float32_scale(max(-low, high) / scheme.qmax), 0, scheme.activation)
    scale = float32_scale((high - low) / (scheme.qmax - scheme.qmin))
    zero_point = int(np.clip(np.round(scheme.qmin - low / scale), scheme.qmin, scheme.qmax))
    return TensorQuant(scale, zero_point, scheme.activation)


def weight_scales(w: np.ndarray, granularity: str = DEFAULT_WEIGHTS) -> np.ndarray:
    """Float [O, I] -> per-output-channel scales [O] (float64 holding float32 values) mapping each row's
    largest magnitude to 127.  `per-tensor`: one scale for the whole matrix, repeated for every channel
    (every kernel reads per-channel scales; the .tflite then stores one)."""
    if granularity not in WEIGHT_GRANULARITIES:
        raise EdgeGRUError(f"unknown weight granularity '{granularity}'; choose one of {', '.join(WEIGHT_GRANULARITIES)}")
    peak = np.abs(w).max(axis=1) if granularity == "per-channel" else np.full(len(w), np.abs(w).max())
    return np.where(peak > 0, peak / WEIGHT_MAX, 1.0).astype(np.float32).astype(np.float64)


def quantize_weight(w: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Float [O, I] at per-channel scales [O] -> int8 [O, I] in [-127, 127]."""
    return np.clip(np.round(w / scales[:, None]), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)


def quantize_bias(b: np.ndarray, input_scale: float, weight_scales: np.ndarray, dtype: str) -> np.ndarray:
    """Float [O] -> integer at scale input_scale * weight_scales[c]; refuses values the dtype can't hold."""
    q = np.round(b / (input_scale * weight_scales))
    info = np.iinfo(dtype)
    if np.abs(q).max(initial=0) > info.max:
        raise EdgeGRUError(f"a bias does not fit {dtype} at scale s_in*s_w; the input scale is too small")
    return q.astype(dtype)
