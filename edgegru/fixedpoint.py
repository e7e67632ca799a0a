"""Integer primitives of the TFLite quantization spec, vectorized over numpy int64 arrays.

Nothing here knows about GRUs.  Values are int32 held in int64 arrays (so products of two int32 fit),
and every function returns int64 arrays whose values lie in the stated range.  Multipliers are Q0.31
integers in [2^30, 2^31) (or 0) with a power-of-two `shift`: real ≈ multiplier * 2^(shift - 31).

Two requantization roundings exist in the TFLite family:
- `double`: saturating rounding doubling high multiply, then rounding divide by a power of two (round
  half away from zero); TFLite Micro and tflite-runtime's reference kernels.
- `single`: one 64-bit multiply, add half, arithmetic shift (round half up); LiteRT 2.x
  (TFLITE_SINGLE_ROUNDING).
The 16x8 FULLY_CONNECTED of `double` builds requantizes its int64 accumulator with the multiplier
reduced to Q15 (`q15_multiplier`, prepared once; `multiply_by_q15_multiplier`).
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
ROUNDINGS = ("double", "single")


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """real > 0 -> (multiplier in [2^30, 2^31), shift) with real ≈ multiplier * 2^(shift - 31); 0 -> (0, 0).

    frexp gives real = q * 2^shift with q in [0.5, 1); q is rounded half away from zero to Q31; a
    carry to 2^31 halves the multiplier and bumps the shift; shifts below -31 flush to zero.
    """
    if real_multiplier < 0:
        raise ValueError(f"multipliers must be >= 0, got {real_multiplier}")
    if real_multiplier == 0:
        return 0, 0
    q, shift = math.frexp(real_multiplier)
    q_fixed = int(math.floor(q * 2**31 + 0.5))  # q > 0: round half away from zero
    if q_fixed == 2**31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap to int32, as a C int32 expression that overflows on the target."""
    return ((np.asarray(x, dtype=np.int64) + 2**31) & 0xFFFFFFFF) - 2**31


def _truncating_divide_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """x / 2^exponent rounded toward zero (C integer division)."""
    return np.where(x >= 0, x >> exponent, -((-x) >> exponent))


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """round(a * b / 2^31) for int32 a, b, ties toward +inf (a nudged product truncated toward zero);
    INT32_MIN * INT32_MIN saturates to INT32_MAX.  Result in int32 range."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    product = a * b
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    high = _truncating_divide_by_pot(product + nudge, 31)
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """x / 2^exponent rounded to nearest, ties away from zero; exponent in [0, 31]."""
    x, exponent = np.asarray(x, dtype=np.int64), np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift, rounding: str = "double") -> np.ndarray:
    """int32 x times real multiplier * 2^(shift - 31), rounded the runtime's way; int32 result.

    `multiplier` and `shift` broadcast against x (per-channel requantization).  `double`: x << max(shift, 0)
    (wrapping like C int32), SRDHM, rounding divide by 2^max(-shift, 0).  `single`: (x * multiplier +
    2^(30 - shift)) >> (31 - shift) in 64 bits, then truncated to int32.
    """
    x = np.asarray(x, dtype=np.int64)
    multiplier, shift = np.asarray(multiplier, dtype=np.int64), np.asarray(shift, dtype=np.int64)
    if rounding == "double":
        left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
        return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(wrap_int32(x << left), multiplier), right)
    if rounding == "single":
        total_shift = 31 - shift
        return wrap_int32((x * multiplier + (np.int64(1) << (total_shift - 1))) >> total_shift)
    raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")


def q15_multiplier(multiplier) -> np.ndarray:
    """Q31 multiplier(s) -> Q15, rounded (half up) and capped at 0x7FFF: the multiplier the 16x8 kernels
    of double-rounding builds (TFLite Micro, tflite-runtime) requantize an int64 accumulator with.
    Computed once, at quantization time (`integer_ops.prepare_fully_connected`)."""
    multiplier = np.asarray(multiplier, dtype=np.int64)
    return np.where(multiplier < 0x7FFF0000, (multiplier + (1 << 15)) >> 16, 0x7FFF)


def multiply_by_q15_multiplier(x, multiplier_q15, shift) -> np.ndarray:
    """int64 accumulator x times multiplier_q15 * 2^(shift - 15) -> int32, as the 16x8 kernels of
    double-rounding builds requantize: one 64-bit multiply, add half, arithmetic shift by 15 - shift
    (|x| < 2^47, shift <= 14).  (LiteRT's single-rounding builds keep the Q31 multiplier instead:
    `multiply_by_quantized_multiplier(..., "single")`, exact in 64 bits for |x| < 2^31.)"""
    x = np.asarray(x, dtype=np.int64)
    multiplier_q15, shift = np.asarray(multiplier_q15, dtype=np.int64), np.asarray(shift, dtype=np.int64)
    total_shift = 15 - shift
    return wrap_int32((x * multiplier_q15 + (np.int64(1) << (total_shift - 1))) >> total_shift)


def multiply_by_double_scale(x, scale) -> np.ndarray:
    """C `round(double(x) * scale)`: the product rounded to double (IEEE), then to an integer with ties
    away from zero.  |x| < 2^53.  Not TFLite-spec fixed point: LiteRT's reference FULLY_CONNECTED
    requantizes this way, and the golden model reproduces it for that runtime only."""
    product = np.asarray(x, dtype=np.int64).astype(np.float64) * np.asarray(scale, dtype=np.float64)
    whole = np.trunc(product)
    return whole.astype(np.int64) + np.where(np.abs(product - whole) >= 0.5, np.sign(product), 0).astype(np.int64)


def saturate(x, dtype) -> np.ndarray:
    """Clamp to the range of an integer dtype and cast to it."""
    info = np.iinfo(dtype)
    return np.clip(np.asarray(x, dtype=np.int64), info.min, info.max).astype(dtype)
