"""Integer primitives of the TFLite quantization spec, vectorized over numpy int64 arrays.

Nothing here knows about GRUs.  Values are int32 held in int64 arrays (so products of two int32 fit),
and every function returns int64 arrays whose values lie in the stated range.  Multipliers are Q0.31
integers in [2^30, 2^31) (or 0) with a power-of-two `shift`: real ≈ multiplier * 2^(shift - 31).

Two requantization roundings exist in the TFLite family:
- `double`: saturating rounding doubling high multiply, then rounding divide by a power of two (round
  half away from zero); TFLite Micro and tflite-runtime's reference kernels.
- `single`: one 64-bit multiply, add half, arithmetic shift (round half up); LiteRT 2.x
  (TFLITE_SINGLE_ROUNDING).
XNNPACK (LiteRT's default delegate) has two more: `fp32` (`multiply_by_float32_scale`: a float32
product rounded to nearest-even) and, for MUL on Arm NEON, `rndnu` (`multiply_rndnu`).
The 16x8 FULLY_CONNECTED of `double` builds requantizes its int64 accumulator with the multiplier
reduced to Q15 (`q15_multiplier`, prepared once; `multiply_by_q15_multiplier`).

The `*_requantizer` functions prepare one requantization (its multiplier, shift, rounding and output
offset) once and return a function of x that computes exactly the same integers as the primitives,
with the rounding steps fused into a few numpy operations: what the golden model runs per op and step,
where numpy's per-call overhead on small arrays, not arithmetic, is the cost.
`floor_requantization` writes one as a single floor of an exact float64 affine function, which a
FULLY_CONNECTED folds into its weights and bias.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

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
    wrapped = np.asarray(x, dtype=np.int64) + 2**31
    wrapped &= 0xFFFFFFFF
    wrapped -= 2**31
    return wrapped


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """round(a * b / 2^31) for int32 a, b, ties toward +inf (a nudged product truncated toward zero);
    INT32_MIN * INT32_MIN saturates to INT32_MAX.  Result in int32 range.

    The nudge-then-truncate of the C code equals one floor: (a * b + 2^30) >> 31 for either sign."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    high = a * b
    high += 1 << 30
    high >>= 31
    if np.any(high > INT32_MAX):  # only INT32_MIN * INT32_MIN, for int32 inputs
        return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)
    return high


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """x / 2^exponent rounded to nearest, ties away from zero; exponent in [0, 31].

    One floor: (x + 2^(exponent - 1) - [x < 0]) >> exponent (the C code's remainder-vs-threshold test)."""
    x = np.asarray(x, dtype=np.int64)
    if np.ndim(exponent) == 0:
        exponent = int(exponent)
        if exponent == 0:
            return x + 0
        return (x + ((x >> 63) + (1 << (exponent - 1)))) >> exponent
    exponent = np.asarray(exponent, dtype=np.int64)
    half = (np.int64(1) << exponent) >> 1
    return (x + half + (x >> 63) * (exponent > 0)) >> exponent


def multiply_by_quantized_multiplier(x, multiplier, shift, rounding: str = "double") -> np.ndarray:
    """int32 x times real multiplier * 2^(shift - 31), rounded the runtime's way; int32 result.

    `multiplier` and `shift` broadcast against x (per-channel requantization).  `double`: x << max(shift, 0)
    (wrapping like C int32), SRDHM, rounding divide by 2^max(-shift, 0).  `single`: (x * multiplier +
    2^(30 - shift)) >> (31 - shift) in 64 bits, then truncated to int32.
    """
    x = np.asarray(x, dtype=np.int64)
    multiplier, shift = np.asarray(multiplier, dtype=np.int64), np.asarray(shift, dtype=np.int64)
    if rounding == "double":
        if shift.ndim == 0:
            left, right = max(int(shift), 0), max(-int(shift), 0)
        else:
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
    return round_half_away_from_zero(product)


def multiply_by_float32_scale(x, scale) -> np.ndarray:
    """XNNPACK's `fp32` requantization: float32(x) times a float32 scale, the product rounded to float32,
    then to the nearest integer with ties to even (`src/xnnpack/requantization.h`; the qs8-qc8w gemm
    and qs8-vmul fp32 kernels).  x: integers with |x| < 2^31 (int64 array, or float64 holding them
    exactly); scale below 256 (XNNPACK refuses larger ones).  Result |.| < 2^39, int64."""
    product = np.asarray(x).astype(np.float32) * np.asarray(scale, dtype=np.float32)
    return np.rint(product).astype(np.int64)


def multiply_rndnu(x, multiplier, left_pre_shift, post_shift) -> np.ndarray:
    """XNNPACK's `rndnu` requantization (Arm NEON, `xnn_init_qs8_mul_minmax_rndnu_neon_params`): x shifted
    left by `left_pre_shift` >= 0 with int32 saturation, a doubling high multiply that truncates
    (floor(x·multiplier / 2^31); multiplier in [2^30, 2^31)), then a rounding shift right by
    `post_shift` >= 1 with ties toward +inf.  x: int32 values in int64; result in int32 range."""
    x = np.asarray(x, dtype=np.int64)
    shifted = np.clip(x << np.int64(left_pre_shift), INT32_MIN, INT32_MAX)
    high = (shifted * np.int64(multiplier)) >> 31
    return (high + (np.int64(1) << (post_shift - 1))) >> post_shift


def round_half_away_from_zero(product: np.ndarray) -> np.ndarray:
    """float64 -> int64, the nearest integer, ties away from zero (C `round`), exactly: the truncated
    integer plus one step away from zero when the (exact) remainder is at least one half."""
    whole = product.astype(np.int64)  # truncates toward zero
    remainder = product - whole  # exact: a double's integer part is a double, and so is the difference
    whole += remainder >= 0.5
    whole -= remainder <= -0.5
    return whole


def saturate(x, dtype) -> np.ndarray:
    """Clamp to the range of an integer dtype and cast to it."""
    info = np.iinfo(dtype)
    return np.clip(np.asarray(x, dtype=np.int64), info.min, info.max).astype(dtype)


# --- prepared requantizations: the primitives above, constants computed once, roundings fused ---------

Requantizer = Callable[[np.ndarray], np.ndarray]


def _python_ints(values) -> list[int]:
    return [int(v) for v in np.ravel(values)]


def _constants(*arrays) -> list:
    """Broadcast per-channel constants together; all scalars -> Python ints, else int64 arrays."""
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.int64) for a in arrays))
    if arrays[0].ndim == 0:
        return [int(a) for a in arrays]
    return [np.array(a) for a in arrays]


def requantizer(multiplier, shift, rounding: str = "double", bound: int = INT32_MAX, offset=0) -> Requantizer:
    """x -> multiply_by_quantized_multiplier(x, multiplier, shift, rounding) + offset, for int64 arrays x
    with |x| <= bound (multiplier, shift and offset scalars or per-channel arrays broadcasting against x).

    `double`, when the bound keeps x << max(shift, 0) inside int32 (the C wrap is then the identity)
    and no multiplier is INT32_MIN (SRDHM never saturates): s = (x * (multiplier << left) + 2^30) >> 31,
    then (s - [s < 0] + 2^(right - 1) + offset * 2^right) >> right: the two floors of
    `saturating_rounding_doubling_high_mul` and `rounding_divide_by_pot`, the offset added inside the
    second (exact: a multiple of 2^right).  `single`: see `_shifted_product_requantizer`.  Any other
    case: the primitives themselves, plus the offset."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    multiplier, shift, offset = _constants(multiplier, shift, offset)
    bound = int(bound)

    def general(x):
        return multiply_by_quantized_multiplier(x, multiplier, shift, rounding) + offset

    if rounding == "single":
        return _shifted_product_requantizer(multiplier, 31 - np.asarray(shift), bound, offset, general)
    multipliers, shifts, offsets = _python_ints(multiplier), _python_ints(shift), _python_ints(offset)
    lefts, rights = [max(v, 0) for v in shifts], [max(-v, 0) for v in shifts]
    if (bound << max(lefts, default=0)) > INT32_MAX or max(rights, default=0) > 31 \
            or max(map(abs, offsets), default=0) >= 2**15 \
            or any(not INT32_MIN < m <= INT32_MAX or abs(m) << left >= 2**62 for m, left in zip(multipliers, lefts)):
        return general
    right = np.maximum(-np.asarray(shift), 0) if isinstance(shift, np.ndarray) else rights[0]
    scaled_multiplier = multiplier << np.maximum(shift, 0) if isinstance(shift, np.ndarray) else multiplier << lefts[0]
    if max(rights, default=0) == 0:
        nonzero_offset = any(offsets)

        def run(x):
            s = x * scaled_multiplier
            s += 1 << 30
            s >>= 31
            if nonzero_offset:
                s += offset
            return s
        return run
    if isinstance(right, np.ndarray):
        addend = np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), 0) + (offset << right)
    else:
        addend = (1 << (right - 1)) + (offset << right)
    if min(rights, default=1) > 0:
        def run(x):
            s = x * scaled_multiplier
            s += 1 << 30
            s >>= 31
            s += s >> 63
            s += addend
            s >>= right
            return s
        return run
    negative_mask = -(right > 0).astype(np.int64)  # -1 where right > 0: the [s < 0] of those channels only

    def run(x):
        s = x * scaled_multiplier
        s += 1 << 30
        s >>= 31
        s += (s >> 63) & negative_mask
        s += addend
        s >>= right
        return s
    return run


def q15_requantizer(multiplier_q15, shift, bound: int, offset=0) -> Requantizer:
    """x -> multiply_by_q15_multiplier(x, multiplier_q15, shift) + offset for int64 arrays |x| <= bound."""
    multiplier_q15, shift, offset = _constants(multiplier_q15, shift, offset)

    def general(x):
        return multiply_by_q15_multiplier(x, multiplier_q15, shift) + offset

    return _shifted_product_requantizer(multiplier_q15, 15 - np.asarray(shift), int(bound), offset, general)


def _shifted_product_requantizer(multiplier, total, bound: int, offset, general: Requantizer) -> Requantizer:
    """x -> wrap_int32((x * multiplier + 2^(total - 1)) >> total) + offset.  When the bound proves the
    64-bit product never overflows and the shifted result never leaves int32 (the wrap is the
    identity), one multiply, one add (half and offset * 2^total together) and one shift; else `general`."""
    # the constants come broadcast together (`_constants`): equally long lists
    multipliers, totals, offsets = _python_ints(multiplier), _python_ints(total), _python_ints(offset)
    if any(not 1 <= t <= 62 for t in totals):
        return general
    for m, t, o in zip(multipliers, totals, offsets):
        half = 1 << (t - 1)
        if bound * abs(m) + half + (abs(o) << t) >= 2**63 or (bound * abs(m) + half) >> t > INT32_MAX \
                or (half - bound * abs(m)) >> t < INT32_MIN:
            return general
    if np.ndim(multiplier) == 0:
        factor, shift, addend = multipliers[0], totals[0], (1 << (totals[0] - 1)) + (offsets[0] << totals[0])
    else:
        factor, shift = np.asarray(multiplier, dtype=np.int64), np.asarray(total, dtype=np.int64)
        addend = (np.int64(1) << (shift - 1)) + (np.asarray(offset, dtype=np.int64) << shift)

    def run(x):
        p = x * factor
        p += addend
        p >>= shift
        return p
    return run


def float32_scale_requantizer(scale, offset=0) -> Requantizer:
    """x -> multiply_by_float32_scale(x, scale) + offset, per channel, for int64 arrays or float64 arrays
    holding the integers exactly (|x| < 2^31)."""
    scale = np.array(scale, dtype=np.float32)
    offset = int(offset) if np.ndim(offset) == 0 else np.array(offset, dtype=np.int64)

    def run(x):
        product = x.astype(np.float32)
        product *= scale
        rounded = np.rint(product, out=product).astype(np.int64)
        rounded += offset
        return rounded
    return run


def double_scale_requantizer(scale, offset=0) -> Requantizer:
    """x -> multiply_by_double_scale(x, scale) + offset, for x given as float64 holding the integers
    exactly (|x| < 2^53): the double product rounded half away from zero, fused."""
    scale = np.array(scale, dtype=np.float64)
    offset = int(offset) if np.ndim(offset) == 0 else np.array(offset, dtype=np.int64)
    nonzero_offset = bool(np.any(offset))

    def run(x):
        rounded = round_half_away_from_zero(x * scale)
        if nonzero_offset:
            rounded += offset
        return rounded
    return run


# --- a requantization as one floor of an exact float64 affine function ------------------------------


@dataclass(frozen=True)
class FloorForm:
    """A fixed-point requantization (plus offset) as one floor, per channel: for every integer |x| <= the
    bound it was made for, the requantized value is floor(y + copysign(half_step, y - threshold)) with
    y = x·scale + addend (floor(y) where half_step is 0).  Every constant is a dyadic number n / 2^k
    with |n| < 2^53, and so are y and any sum of terms x_i·(w_i·scale) making it up: float64 computes
    them exactly, in any order (the sign of y - threshold is exact in any case, and +0 when equal).
    A FULLY_CONNECTED folds `scale` into its weights and `addend` into its bias, then `finish`es its
    matmul's output.  (copysign, not a boolean mask: numpy casts a mask to float slowly.)"""

    scale: np.ndarray  # float64 [C], as are the others
    addend: np.ndarray
    threshold: np.ndarray
    half_step: np.ndarray

    def finish(self, y: np.ndarray) -> np.ndarray:
        """The requantized values (float64) from y = x·scale + addend computed exactly; in place."""
        if self.half_step.any():
            step = y - self.threshold
            y += np.copysign(self.half_step, step, out=step)
        return np.floor(y, out=y)


def floor_requantization(multiplier, shift, rounding: str, bound: int, offset=0) -> FloorForm | None:
    """x -> `requantizer(multiplier, shift, rounding, bound, offset)(x)` (or, rounding `q15`,
    `q15_requantizer(multiplier, shift, bound, offset)(x)`) as a `FloorForm`, for integers |x| <= bound;
    None where the runtime's int32 wrap could act or a numerator could reach 2^53.

    Nested floors of divisions by positive integers are one floor: floor((floor(a / n) + c) / m) =
    floor((a + c·n) / (n·m)).  `double` with right = max(-shift, 0) > 0: s = floor((x·M + 2^30) / 2^31),
    then (s + 2^(right-1) - [s < 0]) / 2^right rounded down, is floor(N / 2^k), k = 31 + right, N = x·M +
    2^30 + 2^(30+right) - [s < 0]·2^31 + offset·2^k; s < 0 exactly when x·M + 2^30 < 0.  With y = (x·M +
    2^(30+right) + offset·2^k) / 2^k, half_step = 2^30 / 2^k and threshold = (2^(30+right) - 2^30 +
    offset·2^k) / 2^k, that is floor(y ± half_step).  `double` with right = 0: floor((x·(M << left) +
    2^30) / 2^31) + offset.  `single` (and `q15`): floor((x·M + 2^(t-1)) / 2^t) + offset, t = 31 - shift
    (15 - shift)."""
    if rounding not in (*ROUNDINGS, "q15"):
        raise ValueError(f"rounding must be one of {(*ROUNDINGS, 'q15')}, got {rounding!r}")
    multiplier, shift, offset = (_python_ints(a) for a in _constants(multiplier, shift, offset))
    bound = int(bound)
    numerators = []  # per channel: factor, addend, threshold, half step, all over 2^exponent; exponent
    for m, s, o in zip(multiplier, shift, offset):
        if rounding == "double":
            left, right = max(s, 0), max(-s, 0)
            if (bound << left) > INT32_MAX or right > 31 or not INT32_MIN < m <= INT32_MAX:
                return None  # x << left could wrap, or SRDHM saturate
            exponent = 31 + right
            if right == 0:
                factor, addend, threshold, half_step = m << left, (1 << 30) + (o << 31), 0, 0
            else:
                factor, addend, half_step = m, (1 << (30 + right)) + (o << exponent), 1 << 30
                threshold = addend - (1 << 30)
        else:
            exponent = (31 if rounding == "single" else 15) - s
            if not 1 <= exponent <= 62:
                return None
            half = 1 << (exponent - 1)
            if (bound * abs(m) + half) >> exponent > INT32_MAX or (half - bound * abs(m)) >> exponent < INT32_MIN:
                return None  # the runtime's int32 wrap could act
            factor, addend, threshold, half_step = m, half + (o << exponent), 0, 0
        if bound * abs(factor) + abs(addend) + 2 * half_step >= 2**53:
            return None
        numerators.append((factor, addend, threshold, half_step, exponent))

    def dyadic(index):  # exact: numerators below 2^53, powers of two well inside float64's range
        return np.array([math.ldexp(n[index], -n[4]) for n in numerators], dtype=np.float64)
    return FloorForm(dyadic(0), dyadic(1), dyadic(2), dyadic(3))
