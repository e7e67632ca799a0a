"""The TFLite integer operators against float references, and their input checks."""

import numpy as np
import pytest

from edgegru.errors import EdgeGRUError
from edgegru.fixedpoint import q15_multiplier
from edgegru.integer_ops import (SIGMOID_TABLE_UINT16, Int16ActivationParams, add_int8, add_int16,
                                 fully_connected_int8, logistic_int16, mul_int8, mul_int16, prepare_add,
                                 prepare_fully_connected, prepare_logistic, prepare_mul, prepare_tanh, sub_int8,
                                 tanh_int8, tanh_int16)
from edgegru.tensor_quant import SCHEMES, TensorQuant

ALL_INT8 = np.arange(-128, 128, dtype=np.int8)
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
INT8, INT16X8 = SCHEMES["int8"], SCHEMES["int16x8"]

# Entries of TFLite's table that are one above round(65536 sigmoid(i / 24)); every other entry equals it.
SIGMOID_TABLE_ONE_ABOVE = (4, 8, 12, 14, 15, 16, 17, 19, 20, 21, 22, 25, 27, 28, 29, 30, 31, 33, 34, 35, 37, 39, 40,
                           41, 43, 44, 45, 46, 49, 50, 54, 62, 63, 64, 66, 82, 86, 93, 100, 103, 112, 116, 135, 255)


def test_sigmoid_table_is_the_sigmoid_in_q0_16():
    i = np.arange(256)
    formula = np.minimum(np.floor(65536 / (1 + np.exp(-i / 24)) + 0.5), 65535).astype(np.int64)
    difference = SIGMOID_TABLE_UINT16 - formula
    assert SIGMOID_TABLE_UINT16.shape == (256,) and SIGMOID_TABLE_UINT16[0] == 32768
    assert SIGMOID_TABLE_UINT16.max() == SIGMOID_TABLE_UINT16[255] == 65535
    assert np.all(np.diff(SIGMOID_TABLE_UINT16) >= 0)
    assert set(difference.tolist()) <= {0, 1}
    assert tuple(np.nonzero(difference)[0].tolist()) == SIGMOID_TABLE_ONE_ABOVE


def test_int8_tanh_table_is_the_correctly_rounded_function():
    q_in, q_out = TensorQuant(0.05, 3, "int8"), TensorQuant(1 / 128, 0, "int8")
    out = tanh_int8(ALL_INT8, prepare_tanh(q_in, q_out, INT8))
    expected = np.clip(np.round(np.tanh(0.05 * (ALL_INT8.astype(float) - 3)) * 128), -128, 127)
    assert (out == expected).all()


@pytest.mark.parametrize("scale", [2.0**-12, 3.1e-4, 1.7e-3])
def test_int16_logistic_and_tanh_are_within_a_few_lsb_of_the_function(scale):
    q_in, q_out = TensorQuant(scale, 0, "int16"), TensorQuant(1 / 32768, 0, "int16")
    real = scale * ALL_INT16.astype(float)
    logistic = logistic_int16(ALL_INT16, prepare_logistic(q_in, q_out, INT16X8))
    tanh = tanh_int16(ALL_INT16, prepare_tanh(q_in, q_out, INT16X8))
    assert np.abs(logistic / 32768 - 1 / (1 + np.exp(-real))).max() < 8 / 32768
    assert np.abs(tanh / 32768 - np.tanh(real)).max() < 16 / 32768
    assert np.all(np.diff(logistic.astype(int)) >= 0) and np.all(np.diff(tanh.astype(int)) >= 0)  # monotonic


def test_add_sub_mul_int8_are_within_one_lsb_of_float():
    rng = np.random.default_rng(0)
    a, b = rng.integers(-128, 128, 5000).astype(np.int8), rng.integers(-128, 128, 5000).astype(np.int8)
    qa, qb, qo = TensorQuant(0.02, -5, "int8"), TensorQuant(0.013, 7, "int8"), TensorQuant(0.04, 2, "int8")
    ra, rb = qa.dequantize(a), qb.dequantize(b)
    for run, prepare, real in ((add_int8, prepare_add, ra + rb), (sub_int8, prepare_add, ra - rb)):
        out = run(a, b, prepare(qa, qb, qo, INT8))
        inside = np.abs(real) < 0.04 * 120
        assert np.abs(qo.dequantize(out) - real)[inside].max() <= 0.04 * 1.0001
    q_mul = TensorQuant(0.0003, 0, "int8")
    out = mul_int8(a, b, prepare_mul(qa, qb, q_mul, INT8))
    inside = np.abs(ra * rb) < 0.0003 * 120
    assert np.abs(q_mul.dequantize(out) - ra * rb)[inside].max() <= 0.0003 * 0.51


def test_int16_add_and_mul_use_the_general_scale_path():
    rng = np.random.default_rng(1)
    a, b = rng.integers(-32767, 32768, 5000).astype(np.int16), rng.integers(-32767, 32768, 5000).astype(np.int16)
    qa, qb, qo = TensorQuant(3e-4, 0, "int16"), TensorQuant(7e-5, 0, "int16"), TensorQuant(4e-4, 0, "int16")
    out = add_int16(a, b, prepare_add(qa, qb, qo, INT16X8))
    assert np.abs(qo.dequantize(out) - (qa.dequantize(a) + qb.dequantize(b))).max() <= 4e-4 * 0.51
    q_mul = TensorQuant(1e-4, 0, "int16")
    out = mul_int16(a, b, prepare_mul(qa, qb, q_mul, INT16X8))
    real = qa.dequantize(a) * qb.dequantize(b)
    inside = np.abs(real) < 1e-4 * 32000
    assert np.abs(q_mul.dequantize(out) - real)[inside].max() <= 1e-4 * 0.51


def test_fully_connected_int8_is_within_one_lsb_and_saturates():
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, (50, 10)).astype(np.int8)
    w = rng.integers(-127, 128, (6, 10)).astype(np.int8)
    w_scales = rng.uniform(0.001, 0.01, 6)
    qx, qo = TensorQuant(0.03, 4, "int8"), TensorQuant(0.02, -3, "int8")
    bias = rng.integers(-1000, 1000, 6).astype(np.int32)
    out = fully_connected_int8(x, w, bias, prepare_fully_connected(qx, w_scales, qo, INT8))
    real = qx.dequantize(x) @ (w * w_scales[:, None]).T + bias * 0.03 * w_scales
    levels = real / 0.02 - 3
    inside, beyond = np.abs(levels) < 120, np.abs(levels) > 130
    assert np.abs(qo.dequantize(out) - real)[inside].max() <= 0.02 * 0.51
    assert beyond.any() and (out[beyond] == np.where(real[beyond] > 0, 127, -128)).all()


def test_run_functions_refuse_wrong_dtypes_and_shapes():
    q = TensorQuant(0.02, 0, "int8")
    with pytest.raises(EdgeGRUError, match="expected int8 integers, got float32"):
        add_int8(np.zeros(3, np.float32), np.zeros(3, np.int8), prepare_add(q, q, q, INT8))
    with pytest.raises(EdgeGRUError, match="input shapes differ"):
        mul_int8(np.zeros(3, np.int8), np.zeros(4, np.int8), prepare_mul(q, q, q, INT8))
    with pytest.raises(EdgeGRUError, match=r"input must be \[B, 5\]"):
        fully_connected_int8(np.zeros((2, 4), np.int8), np.zeros((3, 5), np.int8), None,
                             prepare_fully_connected(q, np.ones(3), q, INT8))


def test_int16_activation_parameters_are_the_effective_ones():
    """The runtimes store multiplier 0 for the power-of-two input scale 2^-12 and substitute 3 << shift
    (shift 0) on every call; prepared parameters hold the substituted values."""
    out = TensorQuant(1 / 32768, 0, "int16")
    assert prepare_logistic(TensorQuant(2.0**-12, 0, "int16"), out, INT16X8) == Int16ActivationParams(3, 0)
    for scale in (3.1e-4, 1.7e-3, 0.05):
        p = prepare_tanh(TensorQuant(scale, 0, "int16"), out, INT16X8)
        assert 32767 // 2 < p.input_multiplier <= 32767
        assert p.input_multiplier == int(np.float32(scale) * 4096.0 * 3.0 * 2.0**p.input_left_shift)


def test_fully_connected_prepares_the_q15_multiplier_for_16x8_only():
    rng = np.random.default_rng(3)
    w_scales = rng.uniform(0.001, 0.01, 6)
    q16 = TensorQuant(3e-4, 0, "int16")
    p = prepare_fully_connected(q16, w_scales, TensorQuant(2e-3, 0, "int16"), INT16X8)
    assert p.output_multiplier_q15.dtype == np.int64
    assert (p.output_multiplier_q15 == q15_multiplier(p.output_multiplier)).all()
    assert prepare_fully_connected(TensorQuant(0.03, 4, "int8"), w_scales, TensorQuant(0.02, -3, "int8"),
                                   INT8).output_multiplier_q15 is None


def test_logistic_and_tanh_refuse_an_output_the_runtimes_do_not_compute():
    q_in = TensorQuant(0.05, 3, "int8")
    for scheme in (INT8, INT16X8):
        scale, zero_point = scheme.logistic_output
        with pytest.raises(EdgeGRUError, match="output must have scale"):
            prepare_logistic(q_in, TensorQuant(scale, zero_point + 1, scheme.activation), scheme)
        scale, zero_point = scheme.tanh_output
        with pytest.raises(EdgeGRUError, match="output must have scale"):
            prepare_tanh(q_in, TensorQuant(scale * 2, zero_point, scheme.activation), scheme)


def test_xnnpack_params_refuse_what_the_delegate_does_not_take():
    """Outside XNNPACK's limits LiteRT runs the op in another kernel, which no golden profile describes."""
    from edgegru import integer_ops

    def q(scale):
        return TensorQuant(scale, 0, "int8")

    with pytest.raises(EdgeGRUError, match="l0.r_pre: LiteRT's XNNPACK delegate does not take this op"):
        integer_ops.prepare_add_xnnpack(q(1.0), q(0.01), q(0.001), name="l0.r_pre")  # ratio 1000 >= 2^8
    with pytest.raises(EdgeGRUError, match="product-to-output scale"):
        integer_ops.prepare_mul_fp32(q(1.0), q(1.0), q(0.001))
    with pytest.raises(EdgeGRUError, match="requantization scale of 256"):
        integer_ops.prepare_fully_connected_fp32(q(1.0), [1.0, 0.5], q(0.001))
    params = integer_ops.prepare_add_xnnpack(q(0.02), q(0.01), q(0.04))  # ratios 0.5 and 0.25: shift 21
    assert (params.shift, params.a_multiplier, params.b_multiplier) == (21, 2**20, 2**19)
