"""The golden model's prepared kernels (tables, folded offsets, fused requantization, FULLY_CONNECTEDs of
one input run as one) against the plain integer kernels, bit for bit; and the long-stream benchmark."""

import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgegru import integer_ops
from edgegru.fixedpoint import (
    INT32_MAX,
    INT32_MIN,
    double_scale_requantizer,
    float32_scale_requantizer,
    floor_requantization,
    multiply_by_double_scale,
    multiply_by_float32_scale,
    multiply_by_q15_multiplier,
    multiply_by_quantized_multiplier,
    q15_requantizer,
    requantizer,
)
from edgegru.golden import (
    ROUNDING_PROFILES,
    IntegerKernels,
    golden_step,
    golden_step_function,
    initial_states,
    integer_kernels,
    op_params,
)
from edgegru.step_graph import run_ops

SCHEMES = ("int8", "int16x8")
CASES = settings(max_examples=400, deadline=None, derandomize=True)


# the plain int8 kernels of XNNPACK's arithmetic, by (op kind, op rounding)
XNNPACK_KERNELS = {
    ("fully_connected", "fp32"): lambda x, w, b, p: integer_ops.fully_connected_int8_fp32(x, w, b, p),
    ("add", "xnnpack"): integer_ops.add_int8_xnnpack, ("sub", "xnnpack"): integer_ops.add_int8_xnnpack,
    ("mul", "fp32"): integer_ops.mul_int8_fp32, ("mul", "rndnu"): integer_ops.mul_int8_rndnu,
}


def reference_kernels(model, rounding):
    """The golden step's kernels as the plain `integer_ops.KERNELS` calls (or XNNPACK's plain kernels),
    params read per call."""
    r = ROUNDING_PROFILES[rounding][model.scheme_spec.activation]
    k = integer_ops.KERNELS[model.scheme_spec.activation]

    def plain(kind):
        if (kind, r.get(kind)) in XNNPACK_KERNELS:
            return lambda op, *inputs: XNNPACK_KERNELS[kind, r[kind]](*inputs, op_params(model, op, r[kind]))
        return lambda op, *inputs: getattr(k, kind)(*inputs, op_params(model, op, r[kind]), rounding=r[kind])

    def fully_connected(op, x):
        return plain("fully_connected")(op, x, model.weights[op.weight], model.biases[op.weight])

    return {
        "fully_connected": fully_connected, "add": plain("add"), "sub": plain("sub"), "mul": plain("mul"),
        "logistic": lambda op, a: k.logistic(a, op_params(model, op, r.get("logistic"))),
        "tanh": lambda op, a: k.tanh(a, op_params(model, op, r.get("tanh"))),
    }


def full_range(rng, dtype, shape):
    info = np.iinfo(dtype)
    values = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    values.flat[:4] = [info.min, info.max, 0, -1][:values.size]
    return values


# --- the whole step -------------------------------------------------------------------------------


@pytest.mark.parametrize("rounding", list(ROUNDING_PROFILES))
@pytest.mark.parametrize("scheme", SCHEMES)
def test_golden_step_equals_the_plain_kernels_bit_for_bit(quantized, scheme, rounding):
    model = quantized[scheme]
    rng = np.random.default_rng(7)
    dtype = np.dtype(model.tensors["x"].dtype)
    kernels = integer_kernels(model, rounding)
    reference = reference_kernels(model, rounding)
    states = initial_states(model, 9)
    for t in range(150):
        x = full_range(rng, dtype, (9, model.config["input_size"]))
        if t == 60:  # anywhere in the state's range, the limits included
            states = [full_range(rng, s.dtype, s.shape) for s in states]
        inputs = {"x": x, **{h_in: s for (h_in, _), s in zip(model.states, states)}}
        expected = run_ops(model.ops, dict(inputs), reference)
        _, states, tensors = golden_step(model, x, states, rounding, kernels)
        assert list(tensors) == list(expected)  # same tensors, in op order
        for name, value in expected.items():
            assert tensors[name].dtype == value.dtype and tensors[name].shape == value.shape, name
            assert np.array_equal(tensors[name], value), (t, name)
            assert tensors[name].flags.c_contiguous, name


@pytest.mark.parametrize("scheme", SCHEMES)
def test_batch_of_one_equals_the_batch(quantized, scheme):
    model = quantized[scheme]
    rng = np.random.default_rng(3)
    x = full_range(rng, np.dtype(model.tensors["x"].dtype), (40, 5, model.config["input_size"]))
    step = golden_step_function(model)
    batch_states, row_states = initial_states(model, 5), [initial_states(model, 1) for _ in range(5)]
    for t in range(40):
        batch_tensors, batch_states = step(x[t], batch_states)
        for i in range(5):
            tensors, row_states[i] = step(x[t, i:i + 1], row_states[i])
            assert all(np.array_equal(tensors[name], batch_tensors[name][i:i + 1]) for name in tensors)


def test_a_swapped_kernel_is_called(quantized):
    model = quantized["int8"]
    kernels = integer_kernels(model, "double")
    assert isinstance(kernels, IntegerKernels) and kernels.runs_plan_for(model)
    calls = []
    fc = kernels["fully_connected"]
    kernels["fully_connected"] = lambda op, x: calls.append(op.output) or fc(op, x)
    assert not kernels.runs_plan_for(model)
    golden_step(model, np.zeros((2, model.config["input_size"]), np.int8), initial_states(model, 2), kernels=kernels)
    assert calls == [op.output for op in model.ops if op.kind == "fully_connected"]


def test_the_prepared_step_is_faster_than_the_plain_kernels(quantized):
    """Relative, so that a loaded machine slows both alike; the margin is far below the measured ~7x."""
    model = quantized["int8"]
    x = np.zeros((1, model.config["input_size"]), np.int8)
    prepared, reference = integer_kernels(model, "double"), reference_kernels(model, "double")

    def seconds(kernels):
        best = np.inf
        for _ in range(5):
            states = initial_states(model, 1)
            start = time.perf_counter()
            for _ in range(100):
                _, states, _ = golden_step(model, x, states, kernels=kernels)
            best = min(best, time.perf_counter() - start)
        return best

    assert seconds(reference) > 2 * seconds(prepared)


# --- each prepared kernel ---------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_prepared_kernel_equals_its_kernel_in_every_rounding(quantized, scheme):
    model = quantized[scheme]
    activation = model.scheme_spec.activation
    dtype = np.dtype(activation)
    k = integer_ops.KERNELS[activation]
    rng = np.random.default_rng(11)
    every = integer_ops._every_value(dtype)
    for op in model.ops:
        params = model.op_params[op.output]
        if op.kind == "fully_connected":
            w, b = model.weights[op.weight], model.biases[op.weight]
            x = full_range(rng, dtype, (300, w.shape[1]))
            for rounding in ("double", "single", "float"):
                run = integer_ops.prepare_kernel(op.kind, params, activation, rounding, w, b)
                assert np.array_equal(run(x), k.fully_connected(x, w, b, params, rounding=rounding)), (op, rounding)
        elif op.kind in ("add", "sub", "mul"):
            if dtype == np.int8:
                a, b = (v.ravel() for v in np.meshgrid(every, every, indexing="ij"))  # every pair
            else:
                a, b = full_range(rng, dtype, 50_000), full_range(rng, dtype, 50_000)
                a[:4], b[:4] = [-32768, 32767, -32768, 32767], [-32768, 32767, 32767, -32768]
            for rounding in ("double", "single"):
                run = integer_ops.prepare_kernel(op.kind, params, activation, rounding)
                expected = getattr(k, op.kind)(a, b, params, rounding=rounding)
                assert np.array_equal(run(a.reshape(-1, 8), b.reshape(-1, 8)), expected.reshape(-1, 8)), (op, rounding)
        else:
            run = integer_ops.prepare_kernel(op.kind, params, activation)
            assert np.array_equal(run(every), getattr(k, op.kind)(every, params)), op


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_group_of_fully_connected_equals_each_alone(quantized, scheme):
    model = quantized[scheme]
    activation = model.scheme_spec.activation
    group = [op for op in model.ops if op.kind == "fully_connected" and op.inputs[0] == "x"]
    x = full_range(np.random.default_rng(5), np.dtype(activation), (17, model.config["input_size"]))
    for rounding in ("double", "single", "float"):
        run = integer_ops.prepare_fully_connected_group(
            activation, [(model.weights[op.weight], model.biases[op.weight], model.op_params[op.output])
                         for op in group], rounding)
        for op, out in zip(group, run(x)):
            alone = integer_ops.KERNELS[activation].fully_connected(
                x, model.weights[op.weight], model.biases[op.weight], model.op_params[op.output], rounding=rounding)
            assert out.dtype == alone.dtype and np.array_equal(out, alone) and out.flags.c_contiguous


def test_prepared_kernels_refuse_what_the_kernels_refuse(quantized):
    from edgegru.errors import EdgeGRUError

    model = quantized["int8"]
    op = next(op for op in model.ops if op.kind == "add")
    run = integer_ops.prepare_kernel("add", model.op_params[op.output], "int8")
    with pytest.raises(EdgeGRUError, match="add_int8 input 1: expected int8"):
        run(np.zeros((1, 4), np.int16), np.zeros((1, 4), np.int8))
    with pytest.raises(EdgeGRUError, match="input shapes differ"):
        run(np.zeros((1, 4), np.int8), np.zeros((1, 5), np.int8))
    fc = next(op for op in model.ops if op.kind == "fully_connected")
    run = integer_ops.prepare_kernel("fully_connected", model.op_params[fc.output], "int8", "double",
                                     model.weights[fc.weight], model.biases[fc.weight])
    with pytest.raises(EdgeGRUError, match=r"must be \[B, \d+\]"):
        run(np.zeros((1, 3), np.int8))
    with pytest.raises(EdgeGRUError, match="fully_connected_int8 input: expected int8"):
        run(np.zeros((1, model.weights[fc.weight].shape[1]), np.float32))


# --- the prepared requantizations against the primitives ------------------------------------------


int32s = st.integers(INT32_MIN, INT32_MAX)
multipliers = st.one_of(st.sampled_from([0, 2**30, 2**31 - 1]), st.integers(2**30, 2**31 - 1))


@CASES
@given(st.lists(st.tuples(multipliers, st.integers(-31, 6)), min_size=1, max_size=6),
       st.one_of(st.integers(0, 2**12), st.integers(0, 2**31 - 1)), st.integers(-200, 200),
       st.sampled_from(["double", "single"]), st.data())
def test_requantizer_equals_the_primitive(channels, bound, offset, rounding, data):
    m = np.array([c[0] for c in channels], dtype=np.int64)
    shift = np.array([c[1] for c in channels], dtype=np.int64)
    if rounding == "single":
        bound = min(bound, 2**24)  # the single rounding's 64-bit product domain
    x = np.array(data.draw(st.lists(st.integers(-bound, bound), min_size=len(m) * 3, max_size=len(m) * 3)),
                 dtype=np.int64).reshape(3, len(m))
    x[0] = np.clip([bound, -bound, 0, 1, -1, bound][:len(m)], -bound, bound)
    expected = multiply_by_quantized_multiplier(x, m, shift, rounding) + offset
    assert np.array_equal(requantizer(m, shift, rounding, bound, offset)(x), expected)
    assert np.array_equal(requantizer(m[0], shift[0], rounding, bound, offset)(x[:, :1]), expected[:, :1])


@CASES
@given(int32s, multipliers, st.integers(-31, 8), st.integers(-128, 127))
def test_double_requantizer_without_a_bound_wraps_like_the_primitive(x, m, shift, offset):
    expected = int(multiply_by_quantized_multiplier(x, m, shift, "double")) + offset
    assert int(requantizer(m, shift, "double", INT32_MAX, offset)(np.array([x]))[0]) == expected
    assert int(requantizer(m, shift, "double", 2**40, offset)(np.array([x]))[0]) == expected  # the general path


@CASES
@given(st.integers(-(2**40), 2**40), st.integers(0, 0x7FFF), st.integers(-20, 14), st.integers(-5, 5))
def test_q15_requantizer_equals_the_primitive(x, m, shift, offset):
    expected = int(multiply_by_q15_multiplier(x, m, shift)) + offset
    for bound in (abs(x), 2**47):
        assert int(q15_requantizer(m, shift, bound, offset)(np.array([x]))[0]) == expected


@CASES
@given(st.lists(st.tuples(multipliers, st.integers(-24, 4)), min_size=1, max_size=6),
       st.one_of(st.integers(0, 2**12), st.integers(0, 2**22)), st.integers(-200, 200),
       st.sampled_from(["double", "single", "q15"]), st.data())
def test_floor_requantization_equals_the_primitive(channels, bound, offset, rounding, data):
    m = np.array([c[0] for c in channels], dtype=np.int64)
    shift = np.array([c[1] for c in channels], dtype=np.int64)
    if rounding == "q15":
        m >>= 16
    x = np.array(data.draw(st.lists(st.integers(-bound, bound), min_size=len(m) * 3, max_size=len(m) * 3)),
                 dtype=np.int64).reshape(3, len(m))
    x[0] = np.clip([bound, -bound, 0, 1, -1, bound][:len(m)], -bound, bound)
    if rounding == "q15":
        expected = multiply_by_q15_multiplier(x, m, shift) + offset
    else:
        expected = multiply_by_quantized_multiplier(x, m, shift, rounding) + offset
    form = floor_requantization(m, shift, rounding, bound, offset)
    if form is None:  # refused only where the int32 wrap could act, or a numerator reach 2^53
        assert rounding != "double" or bound > 2**20 or shift.max() > 0 or shift.min() < -12
        return
    got = form.finish(x.astype(np.float64) * form.scale + form.addend)
    assert np.array_equal(got, expected)


@CASES
@given(st.integers(-(2**40), 2**40), st.floats(1e-9, 8.0), st.integers(-128, 127))
def test_double_scale_requantizer_equals_the_primitive(x, scale, offset):
    expected = int(multiply_by_double_scale(x, scale)) + offset
    assert int(double_scale_requantizer(scale, offset)(np.array([float(x)]))[0]) == expected
    halves = np.arange(-40, 41, dtype=np.int64)  # exact ties at scale 0.5
    assert np.array_equal(double_scale_requantizer(0.5)(halves.astype(np.float64)),
                          multiply_by_double_scale(halves, 0.5))


@CASES
@given(st.integers(-(2**31), 2**31 - 1), st.floats(2.0**-16, 255.0, width=32), st.integers(-128, 127))
def test_float32_scale_requantizer_equals_the_primitive(x, scale, offset):
    expected = int(multiply_by_float32_scale(x, scale)) + offset
    assert int(float32_scale_requantizer(scale, offset)(np.array([x]))[0]) == expected
    assert int(float32_scale_requantizer(scale, offset)(np.array([float(x)]))[0]) == expected


# --- the long-stream benchmark ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, japanese_vowels):
    """An untrained hidden-16 model of japanese-vowels (which has no recordings), quantized in both
    schemes, in a run directory."""
    from edgegru.artifact import save_artifact
    from edgegru.calibrate import observe
    from edgegru.checkpoint import Checkpoint, save_checkpoint
    from edgegru.model import GRUClassifier, ModelConfig
    from edgegru.quantize import quantize_model
    from edgegru.stages.run_layout import RunLayout

    torch.manual_seed(0)
    model = GRUClassifier(ModelConfig(12, 16, 9)).eval()
    checkpoint = Checkpoint(model, japanese_vowels.normalization(), list(japanese_vowels.class_names),
                            "japanese-vowels")
    observations = observe(model, japanese_vowels.train, checkpoint.normalization, max_sequences=16)
    layout = RunLayout(tmp_path_factory.mktemp("bench") / "tiny")
    save_checkpoint(layout.checkpoint, checkpoint)
    for scheme in SCHEMES:
        save_artifact(layout.quant_dir(scheme), quantize_model(checkpoint, observations, scheme))
    return layout


def test_stream_input_repeats_the_test_sequences(japanese_vowels):
    from edgegru.stages.bench_stage import repeated, stream_base

    base, source = stream_base(japanese_vowels)
    assert "no recordings" in source and len(base) == japanese_vowels.test.lengths.sum()
    first = japanese_vowels.test.x[0, :japanese_vowels.test.lengths[0]]
    assert np.array_equal(base[:len(first)], first)
    x = repeated(base, 2 * len(base) + 7)
    assert x.shape == (1, 2 * len(base) + 7, base.shape[1])
    assert np.array_equal(x[0, len(base):2 * len(base)], base) and np.array_equal(x[0, -7:], base[:7])


def test_stream_benchmark_on_a_tiny_run(tiny_run):
    from edgegru.artifact import load_artifact
    from edgegru.stages.bench_stage import BENCHMARKS, StreamBench, bench_run
    from edgegru.stages.firmware_stage import available_targets, write_c_sources

    assert "stream" in BENCHMARKS
    [(title, text)] = bench_run(tiny_run.root, ["stream"], ["int16x8"], [], 1, stream_steps=2_000, progress=False)
    assert "stream, int16x8: 2,000 steps" in title
    assert "japanese-vowels has no recordings" in text and "repeated to 2,000 steps" in text
    assert "C host: skipped" in text and "edgegru firmware" in text  # no sources written yet
    assert "steps per second" in text and "golden / float" in text

    model = load_artifact(tiny_run.quant_dir("int8"))
    write_c_sources(tiny_run, model)
    if available_targets(["host"])[0] != ["host"]:
        pytest.fail(f"no host compiler: {available_targets(['host'])[1]}")
    bench = StreamBench(tiny_run, 2_000, block=300)
    result = bench.run(model)
    golden, c_host, floating = result["golden"], result["c_host"], result["float"]
    assert golden.steps == c_host.steps == floating.steps == 2_000
    assert golden.block_digests == c_host.block_digests and golden.digest == c_host.digest
    assert len(golden.block_digests) == 7  # 6 full blocks of 300 and one of 200
    assert golden.state_min == c_host.state_min and golden.state_max == c_host.state_max
    assert -128 <= golden.state_min[0] <= golden.state_max[0] <= 127 and golden.at_limits == c_host.at_limits
    assert floating.at_limits is None and -1 <= floating.state_min[0] <= floating.state_max[0] <= 1
    assert golden.rss_growth is None or golden.rss_growth < 50 * 2**20
    from edgegru.stages.bench_stage import format_stream_bench

    text = format_stream_bench(result)
    assert "golden vs C host logits: bit-identical over all 2,000 steps" in text
    assert "C host / golden steps per second" in text and "C host (int8)" in text
