"""The TFLite integer operators one GRU step is made of, as TFLite Micro's reference kernels compute them.

Each operator has a `prepare_*` that turns float scales and zero points into integer parameters (the
only place floats appear; it runs once, at quantization time) and run functions of integers only,
named by their types like CMSIS-NN (`fully_connected_int8`, `add_int16`, ...).  Scales are read as
float32, as a .tflite file stores them, and widened to double, as the runtimes do.

`prepare_kernel` turns one op (its params, weights, rounding) into a run function computing exactly
what the op's run function computes, with every constant computed once: lookup tables over all
inputs where the input space is small, fused requantizations (`fixedpoint.*_requantizer`) elsewhere,
a FULLY_CONNECTED's folded into its float64 matmul where exact (`fixedpoint.floor_requantization`).
The golden model streams with these (`golden.integer_kernels`).

Activations: int8 (zero point in [-128, 127]) or int16 (zero point 0).  Weights: int8 symmetric per
output channel.  Bias: int32 (int8 activations) or int64 (int16 activations).  What differs between
the schemes comes from their `tensor_quant.Scheme`; the run functions of each activation type are
gathered in `KERNELS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from edgegru.errors import EdgeGRUError
from edgegru.fixedpoint import (double_scale_requantizer, float32_scale_requantizer, floor_requantization,
                                multiply_by_double_scale, multiply_by_float32_scale, multiply_by_q15_multiplier,
                                multiply_by_quantized_multiplier, multiply_rndnu, q15_multiplier, q15_requantizer, quantize_multiplier, requantizer,
                                saturate)
from edgegru.tensor_quant import Scheme


def _f32(value: float) -> float:
    """A scale as the runtime sees it: stored as float32, used as double."""
    return float(np.float32(value))


def _require(array, dtype, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype != np.dtype(dtype):
        raise EdgeGRUError(f"{name}: expected {np.dtype(dtype)} integers, got {array.dtype}")
    return array


# --- FULLY_CONNECTED ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FullyConnectedParams:
    input_offset: int  # -input zero point
    output_offset: int  # output zero point
    output_multiplier: np.ndarray  # int64 [O], Q31
    output_shift: np.ndarray  # int64 [O]
    output_scale: np.ndarray  # float64 [O], the real multiplier: only LiteRT's `float` requantization reads it
    # int64 [O]: 16x8 only (None for int8), output_multiplier reduced to Q15 as the double-rounding
    # runtimes requantize the int64 accumulator with it (fixedpoint.q15_multiplier)
    output_multiplier_q15: np.ndarray | None = None


def prepare_fully_connected(input_quant, weight_scales, output_quant, scheme: Scheme) -> FullyConnectedParams:
    """Per output channel c: real multiplier s_in * s_w[c] / s_out (double from float32 scales)."""
    reals = [_f32(input_quant.scale) * _f32(s) / _f32(output_quant.scale) for s in weight_scales]
    pairs = [quantize_multiplier(real) for real in reals]
    multiplier = np.array([m for m, _ in pairs], dtype=np.int64)
    return FullyConnectedParams(
        input_offset=-int(input_quant.zero_point),
        output_offset=int(output_quant.zero_point),
        output_multiplier=multiplier,
        output_shift=np.array([s for _, s in pairs], dtype=np.int64),
        output_scale=np.array(reals, dtype=np.float64),
        output_multiplier_q15=q15_multiplier(multiplier) if scheme.q15_fully_connected else None,
    )


def _fully_connected(x, weights, bias, params, name, input_dtype, bias_dtype) -> np.ndarray:
    x = _require(x, input_dtype, f"{name} input")
    weights = _require(weights, np.int8, f"{name} weights")
    if x.ndim != 2 or x.shape[1] != weights.shape[1]:
        raise EdgeGRUError(f"{name}: input must be [B, {weights.shape[1]}], got {list(x.shape)}")
    accumulator = (x.astype(np.int64) + params.input_offset) @ weights.T.astype(np.int64)
    if bias is not None:
        accumulator = accumulator + _require(bias, bias_dtype, f"{name} bias").astype(np.int64)
    return accumulator


def fully_connected_int8(x, weights, bias, params: FullyConnectedParams, rounding: str = "double") -> np.ndarray:
    """int8 x [B, I] · int8 weights [O, I]ᵀ + int32 bias -> int8 [B, O]; `rounding` double, single, or
    float (LiteRT: round(double(acc) * real multiplier)).

    The int32 accumulator Σ (x - zp_in) w + bias is bounded at quantization time
    (`quantize.accumulator_bound`), so int64 arithmetic here never differs from the target's int32.
    """
    accumulator = _fully_connected(x, weights, bias, params, "fully_connected_int8", np.int8, np.int32)
    if rounding == "float":
        scaled = multiply_by_double_scale(accumulator, params.output_scale)
    else:
        scaled = multiply_by_quantized_multiplier(accumulator, params.output_multiplier, params.output_shift, rounding)
    return saturate(scaled + params.output_offset, np.int8)


def fully_connected_int16x8(x, weights, bias, params: FullyConnectedParams, rounding: str = "double") -> np.ndarray:
    """int16 x [B, I] (zp 0) · int8 weights + int64 bias -> int16 [B, O], int64 accumulator
    (bounded below 2^31 at quantization time).  `double` requantizes with the prepared Q15 multiplier,
    `single` with the Q31 one in 64 bits (exact, the accumulator being below 2^31)."""
    accumulator = _fully_connected(x, weights, bias, params, "fully_connected_int16x8", np.int16, np.int64)
    if rounding == "float":
        scaled = multiply_by_double_scale(accumulator, params.output_scale)
    elif rounding == "double":
        scaled = multiply_by_q15_multiplier(accumulator, params.output_multiplier_q15, params.output_shift)
    else:
        scaled = multiply_by_quantized_multiplier(accumulator, params.output_multiplier, params.output_shift, rounding)
    return saturate(scaled + params.output_offset, np.int16)


# --- ADD and SUB --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddParams:
    input1_offset: int
    input2_offset: int
    output_offset: int
    left_shift: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int


def prepare_add(input1_quant, input2_quant, output_quant, scheme: Scheme) -> AddParams:
    """Both inputs are rescaled to a common scale 2·max(s1, s2) / 2^left_shift, summed, then rescaled
    to the output (also used for SUB, whose second input is subtracted instead)."""
    left_shift = scheme.add_left_shift
    s1, s2, s_out = _f32(input1_quant.scale), _f32(input2_quant.scale), _f32(output_quant.scale)
    twice_max = 2 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * s_out))
    return AddParams(-int(input1_quant.zero_point), -int(input2_quant.zero_point), int(output_quant.zero_point),
                     left_shift, m1, sh1, m2, sh2, mo, sho)


# rounding -> (of the two input rescales, of the output rescale).  "single-inputs": LiteRT's optimized
# int16 ADD (measured: every output of the watch and japanese-vowels streams; its SUB is `double`).
_INT16_ADD_ROUNDINGS = {"double": ("double", "double"), "single": ("single", "single"),
                        "single-inputs": ("single", "double")}


def _add_or_sub(a, b, params: AddParams, sign: int, dtype, name: str, rounding: str) -> np.ndarray:
    if rounding not in _INT16_ADD_ROUNDINGS:
        raise ValueError(f"rounding must be one of {tuple(_INT16_ADD_ROUNDINGS)}, got {rounding!r}")
    input_rounding, output_rounding = _INT16_ADD_ROUNDINGS[rounding]
    a, b = _require(a, dtype, f"{name} input 1"), _require(b, dtype, f"{name} input 2")
    if a.shape != b.shape:
        raise EdgeGRUError(f"{name}: input shapes differ: {list(a.shape)} vs {list(b.shape)}")
    shifted1 = (a.astype(np.int64) + params.input1_offset) << params.left_shift
    shifted2 = (b.astype(np.int64) + params.input2_offset) << params.left_shift
    scaled1 = multiply_by_quantized_multiplier(shifted1, params.input1_multiplier, params.input1_shift, input_rounding)
    scaled2 = multiply_by_quantized_multiplier(shifted2, params.input2_multiplier, params.input2_shift, input_rounding)
    raw = scaled1 + sign * scaled2
    out = multiply_by_quantized_multiplier(raw, params.output_multiplier, params.output_shift, output_rounding)
    return saturate(out + params.output_offset, dtype)


def add_int8(a, b, params: AddParams, rounding: str = "double") -> np.ndarray:
    """int8 a + b -> int8; (a - zp1) << 20 fits int32 (|·| < 2^28)."""
    return _add_or_sub(a, b, params, +1, np.int8, "add_int8", rounding)


def sub_int8(a, b, params: AddParams, rounding: str = "double") -> np.ndarray:
    return _add_or_sub(a, b, params, -1, np.int8, "sub_int8", rounding)


def add_int16(a, b, params: AddParams, rounding: str = "double") -> np.ndarray:
    """int16 a + b -> int16 (general scales, pot_scale_int16 = False); a << 15 fits int32 (|·| < 2^31).
    `rounding` double, single or single-inputs (see `_INT16_ADD_ROUNDINGS`)."""
    return _add_or_sub(a, b, params, +1, np.int16, "add_int16", rounding)


def sub_int16(a, b, params: AddParams, rounding: str = "double") -> np.ndarray:
    return _add_or_sub(a, b, params, -1, np.int16, "sub_int16", rounding)


# --- MUL ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MulParams:
    input1_offset: int
    input2_offset: int
    output_offset: int
    output_multiplier: int
    output_shift: int


def prepare_mul(input1_quant, input2_quant, output_quant, scheme: Scheme) -> MulParams:
    """Real multiplier s1 * s2 / s_out, computed in double (as TFLite Micro does)."""
    m, shift = quantize_multiplier(_f32(input1_quant.scale) * _f32(input2_quant.scale) / _f32(output_quant.scale))
    return MulParams(-int(input1_quant.zero_point), -int(input2_quant.zero_point), int(output_quant.zero_point), m, shift)


def _mul(a, b, params: MulParams, dtype, name: str, rounding: str) -> np.ndarray:
    a, b = _require(a, dtype, f"{name} input 1"), _require(b, dtype, f"{name} input 2")
    if a.shape != b.shape:
        raise EdgeGRUError(f"{name}: input shapes differ: {list(a.shape)} vs {list(b.shape)}")
    product = (a.astype(np.int64) + params.input1_offset) * (b.astype(np.int64) + params.input2_offset)
    out = multiply_by_quantized_multiplier(product, params.output_multiplier, params.output_shift, rounding)
    return saturate(out + params.output_offset, dtype)


def mul_int8(a, b, params: MulParams, rounding: str = "double") -> np.ndarray:
    """int8 a * b -> int8; the product of offsets is at most 2^16 in magnitude."""
    return _mul(a, b, params, np.int8, "mul_int8", rounding)


def mul_int16(a, b, params: MulParams, rounding: str = "double") -> np.ndarray:
    """int16 a * b (zero points 0) -> int16; the product is at most 2^30 in magnitude."""
    return _mul(a, b, params, np.int16, "mul_int16", rounding)


# --- LOGISTIC and TANH --------------------------------------------------------------------------


@dataclass(frozen=True)
class LookupTableParams:
    """int8 LOGISTIC/TANH: output for every input, indexed by q + 128."""

    table: np.ndarray  # int8 [256]


def _int8_table(function, input_quant, output_quant) -> LookupTableParams:
    """out(q) = clamp(round(f(s_in (q - zp_in)) / s_out) + zp_out): the runtimes' int8 LOGISTIC and TANH
    equal the correctly rounded function on all 256 inputs (measured; see docs/quantization.md)."""
    q = np.arange(-128, 128, dtype=np.float64)
    real = function(_f32(input_quant.scale) * (q - input_quant.zero_point))
    out = np.floor(real / _f32(output_quant.scale) + 0.5) + output_quant.zero_point
    return LookupTableParams(np.clip(out, -128, 127).astype(np.int8))


def _lookup_int8(x, params: LookupTableParams, name: str) -> np.ndarray:
    x = _require(x, np.int8, name)
    return params.table[x.astype(np.int64) + 128]


@dataclass(frozen=True)
class Int16ActivationParams:
    """int16 LOGISTIC/TANH: input rescaled to 1/(3·4096) units by (x · multiplier + round) >> left_shift,
    round = 2^(left_shift - 1) (0 if left_shift is 0).  Both are the effective values the kernel uses."""

    input_multiplier: int  # 3 at the power-of-two scale 2^-12; else in (16383, 32767] up to scale 32767/12288
    input_left_shift: int


def _int16_activation_params(input_quant) -> Int16ActivationParams:
    """The runtimes' parameters, resolved: at the power-of-two input scale 2^-12 they store multiplier 0
    (and shift 0) and each call substitutes 3 << shift, shift 0; here that substitution is made once."""
    scale = _f32(input_quant.scale)
    if scale == 2.0**-12:
        return Int16ActivationParams(3, 0)
    multiplier, left_shift = scale * 4096.0 * 3.0, 0
    while multiplier <= 32767.0 / 2.0 and left_shift <= 30:
        left_shift += 1
        multiplier *= 2.0
    return Int16ActivationParams(int(multiplier), left_shift)


# sigmoid(i / 24) in unsigned Q0.16, i = 0..255: the constant table TFLite's int16 LOGISTIC/TANH kernels
# interpolate in (a few entries differ by 1 from correctly rounded values, so it is data, not a formula).
SIGMOID_TABLE_UINT16 = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535,
], dtype=np.int64)


def _rescaled_int16_input(x, params: Int16ActivationParams, name: str) -> np.ndarray:
    x = _require(x, np.int16, name).astype(np.int64)
    left_shift = params.input_left_shift
    rounding = (1 << (left_shift - 1)) if left_shift > 0 else 0
    return (x * params.input_multiplier + rounding) >> left_shift


def _interpolate(magnitude: np.ndarray, fraction_bits: int) -> np.ndarray:
    """Linear interpolation in SIGMOID_TABLE_UINT16 at magnitude / 2^fraction_bits, in Q0.(16+fraction_bits)."""
    index = magnitude >> fraction_bits
    inside = index < 255
    safe = np.where(inside, index, 0)
    low, high = SIGMOID_TABLE_UINT16[safe], SIGMOID_TABLE_UINT16[safe + 1]
    fraction = magnitude & ((1 << fraction_bits) - 1)
    return inside, (low << fraction_bits) + fraction * (high - low)


def _check_fixed_output(kind: str, output_quant, scheme: Scheme) -> None:
    scale, zero_point = scheme.fixed_output(kind)
    if _f32(output_quant.scale) != _f32(scale) or int(output_quant.zero_point) != zero_point:
        raise EdgeGRUError(f"{scheme.name} {kind}: the output must have scale {scale!r} and zero point {zero_point} "
                           f"(fixed by the runtimes), got {output_quant.scale!r} and {output_quant.zero_point}")


def prepare_logistic(input_quant, output_quant, scheme: Scheme):
    """A 256-entry table (int8) or the input rescaling (int16); the output is `scheme.logistic_output`."""
    _check_fixed_output("logistic", output_quant, scheme)
    if scheme.lookup_activations:
        return _int8_table(lambda v: 1.0 / (1.0 + np.exp(-v)), input_quant, output_quant)
    return _int16_activation_params(input_quant)


def prepare_tanh(input_quant, output_quant, scheme: Scheme):
    """A 256-entry table (int8) or the input rescaling (int16); the output is `scheme.tanh_output`."""
    _check_fixed_output("tanh", output_quant, scheme)
    if scheme.lookup_activations:
        return _int8_table(np.tanh, input_quant, output_quant)
    return _int16_activation_params(input_quant)


def logistic_int8(x, params: LookupTableParams) -> np.ndarray:
    return _lookup_int8(x, params, "logistic_int8 input")


def tanh_int8(x, params: LookupTableParams) -> np.ndarray:
    return _lookup_int8(x, params, "tanh_int8 input")


def logistic_int16(x, params: Int16ActivationParams) -> np.ndarray:
    """int16 -> sigmoid in Q0.15 (the int16x8 scheme's LOGISTIC output), by 9-bit interpolation in the
    sigmoid table."""
    value = _rescaled_int16_input(x, params, "logistic_int16 input")
    inside, interpolated = _interpolate(np.abs(value), 9)
    result = np.where(inside, interpolated, 0x7FFF << 10)
    result = np.where(value >= 0, result + (1 << 9), (1 << 25) - result + (1 << 9) - 1)
    return (result >> 10).astype(np.int16)


def tanh_int16(x, params: Int16ActivationParams) -> np.ndarray:
    """int16 -> tanh in Q0.15 (the int16x8 scheme's TANH output), via tanh(v) = 2 sigmoid(2v) - 1 with
    8-bit interpolation."""
    value = _rescaled_int16_input(x, params, "tanh_int16 input")
    inside, interpolated = _interpolate(np.abs(value), 8)
    result = np.where(inside, interpolated, 0xFFFF << 8)
    result = np.where(value >= 0, result - (1 << 23) + (1 << 7), -result + (1 << 23) + (1 << 7) - 1)
    return (result >> 8).astype(np.int16)


# --- XNNPACK (LiteRT's default delegate): int8 arithmetic of its own -----------------------------
#
# LiteRT hands int8 FULLY_CONNECTED, ADD, SUB, MUL, LOGISTIC and TANH to XNNPACK, which derives its own
# parameters from the .tflite's float32 scales when it creates each operator (float32 arithmetic, in the
# order written below), and computes with them.  Read from XNNPACK's sources and measured against
# ai-edge-litert on this machine (docs/quantization.md): `src/operators/fully-connected-nc.c` and the
# qs8-qc8w gemm fp32 kernels (FULLY_CONNECTED), `src/microparams-init.c` and `src/qs8-vadd`
# (ADD/SUB), `src/configs/binary-elementwise-config.c` and `src/qs8-vmul` (MUL: fp32 on x86, rndnu on
# Arm NEON), `src/operators/unary-elementwise-nc.c` and `src/reference/unary-elementwise.cc`
# (LOGISTIC/TANH tables).  An op whose scales XNNPACK refuses is not delegated; the golden model
# then has no profile for it and says so.

_F32 = np.float32
XNNPACK_ROUNDINGS = ("fp32", "xnnpack", "rndnu")  # the op roundings whose params `prepare_xnnpack` derives


@dataclass(frozen=True)
class Fp32FullyConnectedParams:
    """int8 FULLY_CONNECTED requantized in float32 (XNNPACK qs8-qc8w)."""

    input_offset: int  # -input zero point
    output_offset: int  # output zero point
    output_scale_f32: np.ndarray  # float32 [O]: float32(float32(s_in * s_w[c]) / s_out), each < 256


@dataclass(frozen=True)
class XnnpackAddParams:
    """int8 ADD or SUB (qs8-vadd): out = clamp(((bias + a·a_multiplier + b·b_multiplier) >> shift) + output_zero_point).
    For SUB, b_multiplier is negative.  Every term fits int32: |multiplier| <= 2^21, bias < 2^30."""

    a_multiplier: int
    b_multiplier: int
    shift: int  # in [12, 30]
    bias: int  # 2^(shift-1) - a_multiplier·zp_a - b_multiplier·zp_b
    output_zero_point: int


@dataclass(frozen=True)
class Fp32MulParams:
    """int8 MUL requantized in float32 (qs8-vmul fp32, XNNPACK on x86)."""

    input1_offset: int
    input2_offset: int
    output_offset: int
    scale: float  # float32 value: float32(float32(s1 * s2) / s_out), in [2^-16, 2^8)


@dataclass(frozen=True)
class RndnuMulParams:
    """int8 MUL with XNNPACK's rndnu fixed point (qs8-vmul rndnu, Arm NEON): the float32 scale's 24-bit
    mantissa as a Q31 multiplier, and its exponent as a saturating pre-shift left and a rounding
    post-shift right (`fixedpoint.multiply_rndnu`)."""

    input1_offset: int
    input2_offset: int
    output_offset: int
    multiplier: int  # in [2^30, 2^31 - 128]
    left_pre_shift: int  # >= 0
    post_shift: int  # in [1, 15]


def _xnnpack_refuses(name: str, what: str) -> EdgeGRUError:
    return EdgeGRUError(f"{name}: LiteRT's XNNPACK delegate does not take this op ({what}); LiteRT would run it "
                        f"with another kernel, which the golden model has no profile for")


def prepare_fully_connected_fp32(input_quant, weight_scales, output_quant, name: str = "FULLY_CONNECTED"
                                 ) -> Fp32FullyConnectedParams:
    scales = (_F32(input_quant.scale) * np.asarray(weight_scales, dtype=_F32)) / _F32(output_quant.scale)
    if np.any(scales >= 256):
        raise _xnnpack_refuses(name, "a requantization scale of 256 or more")
    return Fp32FullyConnectedParams(-int(input_quant.zero_point), int(output_quant.zero_point), scales.astype(_F32))


def prepare_add_xnnpack(input1_quant, input2_quant, output_quant, sign: int = +1, name: str = "ADD") -> XnnpackAddParams:
    """`sign` -1 for SUB: XNNPACK runs SUB as ADD with the second input's scale negated."""
    a_scale = _F32(input1_quant.scale) / _F32(output_quant.scale)
    b_scale = _F32(input2_quant.scale) / _F32(output_quant.scale)
    largest = max(a_scale, b_scale)
    if min(a_scale, b_scale) < 2.0**-10 or largest >= 2.0**8:
        raise _xnnpack_refuses(name, "an input-to-output scale ratio outside [2^-10, 2^8)")
    exponent = math.frexp(float(largest))[1] - 1  # floor(log2(largest)), largest being a normal float32
    shift = 20 - exponent
    a_multiplier = round(float(a_scale) * 2.0**shift)  # exact scaling, then ties to even (lrintf)
    b_multiplier = sign * round(float(b_scale) * 2.0**shift)
    bias = (1 << (shift - 1)) - a_multiplier * int(input1_quant.zero_point) - b_multiplier * int(input2_quant.zero_point)
    return XnnpackAddParams(a_multiplier, b_multiplier, shift, bias, int(output_quant.zero_point))


def _mul_scale_f32(input1_quant, input2_quant, output_quant, name: str) -> np.float32:
    scale = (_F32(input1_quant.scale) * _F32(input2_quant.scale)) / _F32(output_quant.scale)
    if not 2.0**-16 <= scale < 2.0**8:
        raise _xnnpack_refuses(name, "a product-to-output scale outside [2^-16, 2^8)")
    return scale


def prepare_mul_fp32(input1_quant, input2_quant, output_quant, name: str = "MUL") -> Fp32MulParams:
    scale = _mul_scale_f32(input1_quant, input2_quant, output_quant, name)
    return Fp32MulParams(-int(input1_quant.zero_point), -int(input2_quant.zero_point), int(output_quant.zero_point),
                         float(scale))


def prepare_mul_rndnu(input1_quant, input2_quant, output_quant, name: str = "MUL") -> RndnuMulParams:
    bits = int(np.array(_mul_scale_f32(input1_quant, input2_quant, output_quant, name), dtype=_F32).view(np.uint32))
    multiplier = ((bits & 0x007FFFFF) | 0x00800000) << 7
    shift = 127 + 31 - 32 - (bits >> 23)
    post_shift = max(shift, 1)
    return RndnuMulParams(-int(input1_quant.zero_point), -int(input2_quant.zero_point), int(output_quant.zero_point),
                          multiplier, post_shift - shift, post_shift)


def _sigmoid_f32(x: np.ndarray) -> np.ndarray:
    """XNNPACK's reference sigmoid: e = exp(x) in double, e / (1 + e) rounded to float32; 1 above 100, 0
    below -100."""
    e = np.exp(x.astype(np.float64))
    return np.where(x > 100, 1, np.where(x < -100, 0, e / (1 + e))).astype(_F32)


def _tanh_f32(x: np.ndarray) -> np.ndarray:
    """tanh rounded to float32 (XNNPACK's reference calls tanhf)."""
    return np.tanh(x.astype(np.float64)).astype(_F32)


def prepare_activation_xnnpack(kind: str, input_quant, output_quant) -> LookupTableParams:
    """int8 LOGISTIC or TANH as XNNPACK tabulates it when it creates the operator: x = (q - zp_in) · s_in in
    float32, f(x) in float32, then nearbyint(f(x) · (1 / s_out) + zp_out) in float32, clamped."""
    q = np.arange(-128, 128).astype(_F32)
    x = (q - _F32(input_quant.zero_point)) * _F32(input_quant.scale)
    y = {"logistic": _sigmoid_f32, "tanh": _tanh_f32}[kind](x)
    out = np.rint(y * (_F32(1) / _F32(output_quant.scale)) + _F32(output_quant.zero_point))
    return LookupTableParams(np.clip(out, -128, 127).astype(np.int8))


def fully_connected_int8_fp32(x, weights, bias, params: Fp32FullyConnectedParams) -> np.ndarray:
    """int8 x [B, I] · int8 weights [O, I]ᵀ + int32 bias -> int8 [B, O], requantized in float32."""
    accumulator = _fully_connected(x, weights, bias, params, "fully_connected_int8_fp32", np.int8, np.int32)
    return saturate(multiply_by_float32_scale(accumulator, params.output_scale_f32) + params.output_offset, np.int8)


def add_int8_xnnpack(a, b, params: XnnpackAddParams) -> np.ndarray:
    """int8 a + b (or a - b: the sign is in `params.b_multiplier`) -> int8, XNNPACK's qs8-vadd."""
    a, b = _require(a, np.int8, "add_int8_xnnpack input 1"), _require(b, np.int8, "add_int8_xnnpack input 2")
    accumulator = params.bias + a.astype(np.int64) * params.a_multiplier + b.astype(np.int64) * params.b_multiplier
    return saturate((accumulator >> params.shift) + params.output_zero_point, np.int8)


def mul_int8_fp32(a, b, params: Fp32MulParams) -> np.ndarray:
    """int8 a * b -> int8, XNNPACK's qs8-vmul fp32 (x86): the product of offsets (|.| <= 2^16) in float32."""
    a, b = _require(a, np.int8, "mul_int8_fp32 input 1"), _require(b, np.int8, "mul_int8_fp32 input 2")
    product = (a.astype(np.int64) + params.input1_offset) * (b.astype(np.int64) + params.input2_offset)
    return saturate(multiply_by_float32_scale(product, params.scale) + params.output_offset, np.int8)


def mul_int8_rndnu(a, b, params: RndnuMulParams) -> np.ndarray:
    """int8 a * b -> int8, XNNPACK's qs8-vmul rndnu (Arm NEON)."""
    a, b = _require(a, np.int8, "mul_int8_rndnu input 1"), _require(b, np.int8, "mul_int8_rndnu input 2")
    product = (a.astype(np.int64) + params.input1_offset) * (b.astype(np.int64) + params.input2_offset)
    scaled = multiply_rndnu(product, params.multiplier, params.left_pre_shift, params.post_shift)
    return saturate(scaled + params.output_offset, np.int8)


def prepare_xnnpack(kind: str, rounding: str, input_quants: list, output_quant, weight_scales=None,
                    name: str = "") -> object:
    """The params XNNPACK derives for one int8 op of `kind` with this `rounding` ("fp32", "xnnpack",
    "rndnu"), from the tensors' float32 scales, as LiteRT's delegate creates the operator."""
    if kind == "fully_connected" and rounding == "fp32":
        return prepare_fully_connected_fp32(input_quants[0], weight_scales, output_quant, name)
    if kind in ("add", "sub") and rounding == "xnnpack":
        return prepare_add_xnnpack(*input_quants, output_quant, +1 if kind == "add" else -1, name)
    if kind == "mul" and rounding == "fp32":
        return prepare_mul_fp32(*input_quants, output_quant, name)
    if kind == "mul" and rounding == "rndnu":
        return prepare_mul_rndnu(*input_quants, output_quant, name)
    if kind in ("logistic", "tanh") and rounding == "xnnpack":
        return prepare_activation_xnnpack(kind, input_quants[0], output_quant)
    raise EdgeGRUError(f"no XNNPACK arithmetic '{rounding}' for op kind '{kind}'")


# --- the run functions of each activation type --------------------------------------------------


@dataclass(frozen=True)
class Kernels:
    """One run function per op kind of the step graph (`step_graph.Op.kind`)."""

    fully_connected: Callable
    add: Callable
    sub: Callable
    mul: Callable
    logistic: Callable
    tanh: Callable


# by `Scheme.activation`: the kernels are chosen by the activation type, as the runtimes do
KERNELS = {
    "int8": Kernels(fully_connected_int8, add_int8, sub_int8, mul_int8, logistic_int8, tanh_int8),
    "int16": Kernels(fully_connected_int16x8, add_int16, sub_int16, mul_int16, logistic_int16, tanh_int16),
}


# --- prepared kernels: one op's run function with its constants computed once ---------------------

try:  # the clip ufunc itself: np.clip's Python wrapper costs more than the clipping on small arrays
    from numpy._core.umath import clip as _clip
except ImportError:  # pragma: no cover - numpy without the _core alias
    from numpy.core.umath import clip as _clip

_UNSIGNED = {np.dtype(np.int8): np.dtype(np.uint8), np.dtype(np.int16): np.dtype(np.uint16)}
_INPUT_DTYPE = {"int8": np.dtype(np.int8), "int16": np.dtype(np.int16)}
_BIAS_DTYPE = {"int8": np.dtype(np.int32), "int16": np.dtype(np.int64)}


def _every_value(dtype) -> np.ndarray:
    """Every value of int8 or int16, in the order of their bit patterns (`x.view(unsigned)` indexes it)."""
    unsigned = _UNSIGNED[np.dtype(dtype)]
    return np.arange(np.iinfo(unsigned).max + 1, dtype=np.int64).astype(unsigned).view(dtype)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _checked(array, dtype, name: str) -> np.ndarray:
    """`_require`, with the common case (an ndarray of exactly that dtype) tested first."""
    if type(array) is np.ndarray and array.dtype is dtype:
        return array
    return _require(array, dtype, name)


# int8 ADD, SUB and MUL with XNNPACK's arithmetic, by (kind, rounding): their params carry everything
_XNNPACK_BINARY_INT8 = {("add", "xnnpack"): add_int8_xnnpack, ("sub", "xnnpack"): add_int8_xnnpack,
                        ("mul", "fp32"): mul_int8_fp32, ("mul", "rndnu"): mul_int8_rndnu}


@lru_cache(maxsize=64)
def _int8_binary_table(kind: str, params, rounding: str) -> np.ndarray:
    """An int8 ADD, SUB or MUL on all 65,536 input pairs, flat, indexed by (bits(a) << 8) | bits(b)."""
    values = _every_value(np.int8)
    a, b = np.meshgrid(values, values, indexing="ij")
    if (kind, rounding) in _XNNPACK_BINARY_INT8:
        out = _XNNPACK_BINARY_INT8[kind, rounding](a, b, params)
    else:
        out = {"add": add_int8, "sub": sub_int8, "mul": mul_int8}[kind](a, b, params, rounding=rounding)
    return _frozen(np.ascontiguousarray(out).ravel())


@lru_cache(maxsize=32)  # 1 MB each
def _int16_add_input_tables(params: AddParams, sign: int, rounding: str) -> tuple[np.ndarray, np.ndarray]:
    """ADD/SUB int16: each input rescaled to the common scale (times `sign` for the second), for all
    65,536 inputs, indexed by bits(x): the first half of `_add_or_sub`, which depends on one input only."""
    values = _every_value(np.int16).astype(np.int64)
    scaled1 = multiply_by_quantized_multiplier((values + params.input1_offset) << params.left_shift,
                                               params.input1_multiplier, params.input1_shift, rounding)
    scaled2 = multiply_by_quantized_multiplier((values + params.input2_offset) << params.left_shift,
                                               params.input2_multiplier, params.input2_shift, rounding)
    return _frozen(scaled1), _frozen(sign * scaled2)


@lru_cache(maxsize=64)
def _int16_activation_table(kind: str, params: Int16ActivationParams) -> np.ndarray:
    """LOGISTIC or TANH int16 on all 65,536 inputs, indexed by bits(x)."""
    return _frozen((logistic_int16 if kind == "logistic" else tanh_int16)(_every_value(np.int16), params))


def _reach(dtype, offset: int) -> int:
    """max |x + offset| over the values x of an integer dtype."""
    info = np.iinfo(dtype)
    return max(abs(int(info.min) + offset), abs(int(info.max) + offset))


def prepare_kernel(kind: str, params, activation: str, rounding: str | None = "double", weights=None,
                   bias=None) -> Callable:
    """The run function of one op (`kind` as in `Kernels`) of an `activation` ("int8" or "int16") graph,
    prepared once: it takes the op's inputs and returns exactly what `KERNELS[activation].<kind>(inputs...,
    params, [rounding])` (with `weights` and `bias` for a FULLY_CONNECTED) returns, and refuses the same
    inputs (dtype, shape).  `rounding` is ignored by LOGISTIC and TANH.  XNNPACK's int8 arithmetic
    (`rounding` "fp32", "xnnpack" or "rndnu", with the params of `prepare_xnnpack`) computes what
    `fully_connected_int8_fp32`, `add_int8_xnnpack`, `mul_int8_fp32` or `mul_int8_rndnu` computes;
    int16 ADD/SUB also take "single-inputs" (LiteRT's optimized int16 ADD: the inputs rescaled with
    single rounding, the sum with double)."""
    if activation not in _INPUT_DTYPE:
        raise EdgeGRUError(f"unknown activation type '{activation}'; choose one of {', '.join(_INPUT_DTYPE)}")
    if kind == "fully_connected":
        return _prepared_fully_connected(activation, weights, bias, params, rounding)
    if kind in ("add", "sub", "mul"):
        return _prepared_binary(kind, activation, params, rounding)
    if kind in ("logistic", "tanh"):
        return _prepared_activation(kind, activation, params)
    raise EdgeGRUError(f"unknown op kind '{kind}'")


def _saturating(requantize, dtype) -> Callable:
    info = np.iinfo(dtype)
    low, high = int(info.min), int(info.max)

    def run(accumulator):
        return _clip(requantize(accumulator), low, high).astype(dtype)
    return run


def _prepared_fully_connected(activation, weights, bias, params: FullyConnectedParams, rounding) -> Callable:
    run_group = prepare_fully_connected_group(activation, [(weights, bias, params)], rounding)

    def run(x):
        return run_group(x)[0]
    return run


def prepare_fully_connected_group(activation: str, members: list[tuple], rounding: str | None = "double") -> Callable:
    """FULLY_CONNECTEDs reading the same input, `members` = [(weights, bias, params)], as one run function
    x -> [each member's output]: exactly what each member's `prepare_kernel` run function returns, from
    one matmul and one requantization over all their output channels.

    Σ (x - zp) w + b = x·w + (b - zp Σ w): the input offset is folded into the bias.  The product is one
    float64 matmul (BLAS) when every partial sum is an integer below 2^53 (then exact in any order),
    else an int64 matmul (identical to `_fully_connected`'s, wraparound included: int64 arithmetic is
    modular).  A fixed-point requantization (`double`, `single`) is folded into the float64 matmul
    where `fixedpoint.floor_requantization` proves it exact: weights and bias scaled per channel, the
    matmul's output floored; any other is the per-channel `fixedpoint.*_requantizer` of the rounding."""
    input_dtype, bias_dtype = _INPUT_DTYPE[activation], _BIAS_DTYPE[activation]
    name = "fully_connected_int8" if activation == "int8" else "fully_connected_int16x8"
    if rounding not in ("double", "single", "float", "fp32"):
        raise ValueError(f"rounding must be one of ('double', 'single', 'float', 'fp32'), got {rounding!r}")
    if not members:
        raise EdgeGRUError(f"{name}: no FULLY_CONNECTED to prepare")
    all_weights, all_biases, offsets, params_list = [], [], [], []
    for weights, bias, params in members:
        weights = _require(weights, np.int8, f"{name} weights")
        if weights.ndim != 2 or weights.shape[1] != _require(members[0][0], np.int8, f"{name} weights").shape[1]:
            raise EdgeGRUError(f"{name}: weights must be [O, I] with one I per input, got {list(weights.shape)}")
        all_weights.append(weights.astype(np.int64))
        biases = (np.zeros(len(weights), np.int64) if bias is None
                  else _require(bias, bias_dtype, f"{name} bias").astype(np.int64))
        all_biases.append(np.broadcast_to(biases, (len(weights),)))
        offsets.append(np.full(len(weights), int(params.input_offset), dtype=np.int64))
        params_list.append(params)
    width = all_weights[0].shape[1]
    weights64, bias64, input_offsets = (np.concatenate(all_weights), np.concatenate(all_biases),
                                        np.concatenate(offsets))
    ends = np.cumsum([len(w) for w in all_weights]).tolist()
    parts = [np.s_[:, start:end] for start, end in zip([0] + ends[:-1], ends)]

    weight_sums = [int(v) for v in np.abs(weights64).sum(axis=1)]
    folded = [int(b) + int(o) * int(s) for b, o, s in zip(bias64, input_offsets, weights64.sum(axis=1))]
    partial = max(_reach(input_dtype, 0) * w + abs(f) for w, f in zip(weight_sums, folded))  # |x·w + folded| and parts
    exact_in_float = partial < 2**53
    bound = max(_reach(input_dtype, int(o)) * w + abs(int(b)) for w, b, o in zip(weight_sums, bias64, input_offsets))

    def concatenated(field):
        return np.concatenate([np.broadcast_to(np.asarray(getattr(p, field)), (len(w),))
                               for p, w in zip(params_list, all_weights)])

    output_offset = np.concatenate([np.full(len(w), int(p.output_offset), dtype=np.int64)
                                    for p, w in zip(params_list, all_weights)])
    form = None
    if rounding in ("double", "single"):  # fixed point: folded into the matmul where exact
        kind, field = (("q15", "output_multiplier_q15") if rounding == "double" and activation == "int16"
                       else (rounding, "output_multiplier"))
        multiplier, shift = concatenated(field), concatenated("output_shift")
        if exact_in_float:
            form = floor_requantization(multiplier, shift, kind, max(bound, partial), output_offset)
    if form is not None:  # floored float64 to integers, int32 when they fit (an int32 clip costs less)
        reach = max(bound, partial) * np.abs(form.scale) + np.abs(form.addend) + 2 * form.half_step
        integers = np.int32 if reach.max() < 2**31 else np.int64

        def requantize(accumulator):
            return form.finish(accumulator).astype(integers)
    elif rounding == "float":
        requantize = double_scale_requantizer(concatenated("output_scale").astype(np.float64), output_offset)
    elif rounding == "fp32":
        requantize = float32_scale_requantizer(concatenated("output_scale_f32"), output_offset)
    elif kind == "q15":
        requantize = q15_requantizer(multiplier, shift, bound, output_offset)
    else:
        requantize = requantizer(multiplier, shift, rounding, bound, output_offset)
    takes_float = form is not None or rounding in ("float", "fp32")  # the requantization reads float64
    low, high = int(np.iinfo(input_dtype).min), int(np.iinfo(input_dtype).max)

    if form is not None:  # the requantization folded into the matmul: weights and bias scaled, exactly
        weights_t = np.ascontiguousarray(weights64.T * form.scale)
        folded_bias = np.array(folded, dtype=np.float64) * form.scale + form.addend
    elif exact_in_float:
        weights_t = np.ascontiguousarray(weights64.T, dtype=np.float64)
        folded_bias = np.array(folded, dtype=np.float64)
    else:  # int64 arithmetic wraps modulo 2^64 like `_fully_connected`'s: fold modulo 2^64 too
        weights_t64 = np.ascontiguousarray(weights64.T)
        folded_bias64 = np.array([(f + 2**63) % 2**64 - 2**63 for f in folded], dtype=np.int64)

    def requantized(x):
        if exact_in_float:
            accumulator = x.astype(np.float64) @ weights_t
            accumulator += folded_bias
            return requantize(accumulator if takes_float else accumulator.astype(np.int64))
        accumulator = x.astype(np.int64) @ weights_t64
        accumulator += folded_bias64
        return requantize(accumulator.astype(np.float64) if takes_float else accumulator)

    def run(x):
        x = _checked(x, input_dtype, f"{name} input")
        if x.ndim != 2 or x.shape[1] != width:
            raise EdgeGRUError(f"{name}: input must be [B, {width}], got {list(x.shape)}")
        out = _clip(requantized(x), low, high)
        if len(parts) == 1:
            return [out.astype(input_dtype)]
        return [out[part].astype(input_dtype, order="C") for part in parts]
    return run


def _prepared_binary(kind: str, activation: str, params, rounding: str) -> Callable:
    """int8: a table of all 65,536 input pairs.  int16 ADD/SUB: per-input tables of the rescaled inputs,
    then the fused output requantization; int16 MUL: the product, then the fused requantization."""
    dtype = _INPUT_DTYPE[activation]
    name = f"{kind}_{activation}"
    int16_add = activation == "int16" and kind in ("add", "sub")
    known = ("double", "single", "single-inputs") if int16_add else ("double", "single")
    if not (rounding in known or (activation == "int8" and (kind, rounding) in _XNNPACK_BINARY_INT8)):
        raise ValueError(f"rounding {rounding!r} is not one for {name}")
    name1, name2 = f"{name} input 1", f"{name} input 2"

    def checked_pair(a, b):
        a, b = _checked(a, dtype, name1), _checked(b, dtype, name2)
        if a.shape != b.shape:
            raise EdgeGRUError(f"{name}: input shapes differ: {list(a.shape)} vs {list(b.shape)}")
        return a, b

    if activation == "int8":
        table = _int8_binary_table(kind, params, rounding)
        unsigned = _UNSIGNED[dtype]

        def run(a, b):
            a, b = checked_pair(a, b)
            index = a.view(unsigned).astype(np.uint16)  # (bits(a) << 8) | bits(b), built in place: 16 bits
            index <<= 8
            index |= b.view(unsigned)
            return table.take(index)
        return run

    unsigned = _UNSIGNED[dtype]
    if kind in ("add", "sub"):
        input_rounding, output_rounding = _INT16_ADD_ROUNDINGS[rounding]
        scaled1, scaled2 = _int16_add_input_tables(params, +1 if kind == "add" else -1, input_rounding)
        bound = int(np.abs(scaled1).max()) + int(np.abs(scaled2).max())
        finish = _saturating(requantizer(params.output_multiplier, params.output_shift, output_rounding, bound,
                                         params.output_offset), dtype)

        def run(a, b):
            a, b = checked_pair(a, b)
            raw = scaled1.take(a.view(unsigned))
            raw += scaled2.take(b.view(unsigned))
            return finish(raw)
        return run

    offset1, offset2 = int(params.input1_offset), int(params.input2_offset)
    bound = _reach(dtype, offset1) * _reach(dtype, offset2)
    finish = _saturating(requantizer(params.output_multiplier, params.output_shift, rounding, bound,
                                     params.output_offset), dtype)

    def run(a, b):
        a, b = checked_pair(a, b)
        if offset1 or offset2:
            return finish((a.astype(np.int64) + offset1) * (b.astype(np.int64) + offset2))
        return finish(a.astype(np.int64) * b)
    return run


def _prepared_activation(kind: str, activation: str, params) -> Callable:
    dtype = _INPUT_DTYPE[activation]
    unsigned = _UNSIGNED[dtype]
    name = f"{kind}_{activation} input"
    if activation == "int8":
        table = _frozen(params.table[_every_value(np.int8).astype(np.int64) + 128])
    else:
        table = _int16_activation_table(kind, params)

    def run(x):
        return table.take(_checked(x, dtype, name).view(unsigned))
    return run
