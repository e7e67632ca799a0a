"""Property tests of the integer primitives against exact big-integer references (2,000+ cases each)."""

import math
from fractions import Fraction

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edgegru.fixedpoint import (INT32_MAX, INT32_MIN, multiply_by_q15_multiplier, multiply_by_quantized_multiplier,
                                q15_multiplier, quantize_multiplier, rounding_divide_by_pot, saturate,
                                saturating_rounding_doubling_high_mul)

CASES = settings(max_examples=2000, deadline=None, derandomize=True)
EDGES = [INT32_MIN, INT32_MIN + 1, -(2**30), -1, 0, 1, 2**30, INT32_MAX - 1, INT32_MAX]
int32s = st.one_of(st.sampled_from(EDGES), st.integers(INT32_MIN, INT32_MAX))
multipliers = st.one_of(st.sampled_from([0, 2**30, 2**31 - 1, 1518500250]), st.integers(2**30, 2**31 - 1))


def wrap32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def floor_div(n: int, d: int) -> int:
    return n // d  # Python's // is floor division on big integers


def round_half_away(q: Fraction) -> int:
    magnitude = math.floor(abs(q) + Fraction(1, 2))
    return magnitude if q >= 0 else -magnitude


def ref_srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    return floor_div(a * b + 2**30, 2**31)  # round half toward +inf


def ref_double(x: int, m: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    return round_half_away(Fraction(ref_srdhm(wrap32(x * 2**left), m), 2**right))


@CASES
@given(int32s, int32s)
@example(INT32_MIN, INT32_MIN)
@example(2**15, 2**15)  # exactly half an LSB
@example(-(2**15), 2**15)
def test_srdhm_is_exact(a, b):
    assert int(saturating_rounding_doubling_high_mul(a, b)) == ref_srdhm(a, b)


@CASES
@given(int32s, st.integers(0, 31))
@example(3, 1)
@example(-3, 1)  # -1.5 -> -2: ties away from zero
@example(INT32_MIN, 31)
def test_rounding_divide_by_pot_rounds_half_away_from_zero(x, exponent):
    assert int(rounding_divide_by_pot(x, exponent)) == round_half_away(Fraction(x, 2**exponent))


@CASES
@given(int32s, multipliers, st.integers(-31, 8))
@example(0, 2**30, 0)
@example(INT32_MIN, 2**31 - 1, -1)
def test_double_rounding_multiply_matches_the_reference(x, m, shift):
    assert int(multiply_by_quantized_multiplier(x, m, shift, "double")) == ref_double(x, m, shift)


@CASES
@given(st.integers(-(2**24), 2**24), multipliers, st.integers(-31, 6))
@example(1, 2**30, -1)  # 0.25 -> 0
@example(-1, 2**30, 0)  # -0.5 -> 0: half up
def test_single_rounding_multiply_matches_the_reference(x, m, shift):
    total = 31 - shift
    expected = wrap32(floor_div(x * m + 2 ** (total - 1), 2**total))
    assert int(multiply_by_quantized_multiplier(x, m, shift, "single")) == expected


@CASES
@given(multipliers)
@example(0x7FFF0000 - 1)  # the largest that is rounded, to 0x7FFF
@example(0x7FFF0000)  # from here on capped
@example(2**30 + 2**15)  # a tie rounds up
def test_q15_multiplier_rounds_and_caps(m):
    expected = min(math.floor(Fraction(m, 2**16) + Fraction(1, 2)), 0x7FFF)
    assert int(q15_multiplier(m)) == expected


@CASES
@given(st.integers(-(2**47), 2**47 - 1), multipliers, st.integers(-31, 7))
@example(0, 0x7FFF0000, 0)
@example(2**46, 0x7FFFFFFF, -31)
def test_q15_multiply_matches_the_reference(x, m, shift):
    """16x8 requantization of double-rounding builds: x * m15 / 2^(15 - shift), ties up, wrapped."""
    reduced = int(q15_multiplier(m))
    total = 15 - shift
    expected = wrap32(floor_div(x * reduced + 2 ** (total - 1), 2**total))
    assert int(multiply_by_q15_multiplier(x, reduced, shift)) == expected


@CASES
@given(int32s, multipliers, st.integers(-31, 0))
@example(-(2**31), 2**30, 0)  # a tie: -0.5 * 2^31 rounds up
def test_single_rounding_keeps_the_full_multiplier_over_the_int32_range(x, m, shift):
    """The 16x8 FULLY_CONNECTED of single-rounding builds: its accumulator (below 2^31) times the Q31
    multiplier in 64 bits."""
    total = 31 - shift
    expected = wrap32(floor_div(x * m + 2 ** (total - 1), 2**total))
    assert int(multiply_by_quantized_multiplier(x, m, shift, "single")) == expected


@CASES
@given(st.floats(min_value=1e-9, max_value=1e4, allow_nan=False, allow_infinity=False))
@example(1.0)
@example(0.5)
@example(1 - 2**-40)  # rounds up to 2^31 and carries into the shift
def test_quantize_multiplier_is_a_q31_approximation(real):
    m, shift = quantize_multiplier(real)
    assert 2**30 <= m < 2**31
    assert abs(Fraction(m) * Fraction(2) ** (shift - 31) - Fraction(real)) <= Fraction(real) * Fraction(1, 2**31)


def test_quantize_multiplier_zero_and_tiny():
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(1e-12) == (0, 0)


def test_vectorized_per_channel_matches_scalar_calls():
    rng = np.random.default_rng(0)
    x = rng.integers(-(2**20), 2**20, size=(5, 7))
    m = rng.integers(2**30, 2**31, size=7)
    shift = rng.integers(-12, 2, size=7)
    for rounding in ("double", "single"):
        batch = multiply_by_quantized_multiplier(x, m, shift, rounding)
        for i in range(5):
            for c in range(7):
                assert batch[i, c] == multiply_by_quantized_multiplier(int(x[i, c]), int(m[c]), int(shift[c]), rounding)


def test_saturate_clamps_to_the_dtype():
    assert saturate([-1000, -128, 0, 127, 1000], np.int8).tolist() == [-128, -128, 0, 127, 127]
    assert saturate([-(2**20), 2**20], np.int16).tolist() == [-32768, 32767]
