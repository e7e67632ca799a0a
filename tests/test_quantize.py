"""Quantization, the golden model's guarantees, and the artifact's validation."""

import dataclasses
import json

import numpy as np
import pytest

from edgegru.artifact import load_artifact, save_artifact
from edgegru.calibrate import observe
from edgegru.checkpoint import save_checkpoint
from edgegru.data import Split
from edgegru.errors import EdgeGRUError
from edgegru.fixedpoint import q15_multiplier
from edgegru.golden import golden_predict, golden_step, initial_states, integer_kernels, quantize_features, run_sequences
from edgegru.tensor_quant import get_scheme
from edgegru.quantize import accumulator_bound, quantize_model
from edgegru.state_error import state_error_lsb
from edgegru.step_graph import run_ops
from edgegru.train import TrainConfig, accuracy, train
from tests.conftest import in_a_fresh_interpreter

SCHEMES = ("int8", "int16x8")


@pytest.mark.parametrize("variant", ["reset_after", "reset_before"])
def test_accuracy_drop_on_japanese_vowels(japanese_vowels, variant):
    checkpoint, _ = train(japanese_vowels, TrainConfig(hidden=64, variant=variant), progress=False)
    float_accuracy = accuracy(checkpoint.model, japanese_vowels.test, checkpoint.normalization)
    observations = observe(checkpoint.model, japanese_vowels.train, checkpoint.normalization)
    for scheme, allowed_pp in (("int8", 1.0), ("int16x8", 0.3)):
        model = quantize_model(checkpoint, observations, scheme)
        quant_accuracy = np.mean(golden_predict(model, japanese_vowels.test) == japanese_vowels.test.y)
        assert 100 * (float_accuracy - quant_accuracy) <= allowed_pp + 1e-9, scheme


@pytest.mark.parametrize("calibration", ["percentile", "mse"])
def test_other_calibrations_produce_working_models(small_checkpoint, japanese_vowels, calibration):
    observations = observe(small_checkpoint.model, japanese_vowels.train, small_checkpoint.normalization)
    model = quantize_model(small_checkpoint, observations, "int8", calibration)
    float_accuracy = accuracy(small_checkpoint.model, japanese_vowels.test, small_checkpoint.normalization)
    assert np.mean(golden_predict(model, japanese_vowels.test) == japanese_vowels.test.y) >= float_accuracy - 0.05


@pytest.mark.parametrize("scheme", SCHEMES)
def test_accumulators_stay_within_the_proven_bound_for_100k_random_steps(quantized, scheme):
    model = quantized[scheme]
    bounds = {op.output: accumulator_bound(model.weights[op.weight], model.biases[op.weight], model.tensors[op.inputs[0]])
              for op in model.ops if op.kind == "fully_connected"}
    assert max(bounds.values()) < 2**31
    kernels = integer_kernels(model, "double")
    fc = kernels["fully_connected"]
    seen = {name: 0 for name in bounds}

    def checked_fc(op, x):
        acc = (x.astype(np.int64) - model.tensors[op.inputs[0]].zero_point) @ model.weights[op.weight].T.astype(np.int64)
        seen[op.output] = max(seen[op.output], int(np.abs(acc + model.biases[op.weight]).max()))
        return fc(op, x)

    kernels["fully_connected"] = checked_fc
    rng = np.random.default_rng(0)
    info = np.iinfo(model.tensors["x"].dtype)
    states = initial_states(model, 100)
    for _ in range(1000):  # 100 streams x 1,000 steps
        x = rng.integers(info.min, info.max + 1, size=(100, model.config["input_size"])).astype(info.dtype)
        _, states, _ = golden_step(model, x, states, kernels=kernels)
    assert all(seen[name] <= bounds[name] for name in bounds)
    assert all(seen[name] > 0 for name in bounds)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_state_stays_in_range_over_a_10k_step_stream(quantized, small_checkpoint, japanese_vowels, scheme):
    model = quantized[scheme]
    rng = np.random.default_rng(1)
    rows = rng.integers(0, len(japanese_vowels.test), size=10_000 // 7 + 1)
    stream = np.concatenate([japanese_vowels.test.x[r, :7] for r in rows])[None, :10_000]
    split = Split(stream, np.array([10_000]), np.array([0]))
    errors = state_error_lsb(small_checkpoint.model, model, split, "double")
    quant = model.tensors["l0.h"]
    seen = []
    run_sequences(model, quantize_features(model, stream), np.array([10_000]),
                  on_step=lambda t, tensors, active: seen.append(quant.dequantize(tensors["l0.h_new"])))
    lowest, highest = min(real.min() for real in seen), max(real.max() for real in seen)
    assert len(seen) == 10_000
    assert -1.0 - quant.scale <= lowest and highest <= 1.0 + quant.scale  # a GRU state lives in [-1, 1]
    assert errors["mean"][0] < (2.0 if scheme == "int8" else 200.0)  # in LSB of the state's own scale


def test_step_refuses_floats_and_wrong_shapes(quantized):
    model = quantized["int8"]
    states = initial_states(model, 2)
    with pytest.raises(EdgeGRUError, match="must be int8"):
        golden_step(model, np.zeros((2, 12), np.float32), states)
    with pytest.raises(EdgeGRUError, match=r"must have shape \[B, 12\]"):
        golden_step(model, np.zeros((2, 11), np.int8), states)
    with pytest.raises(EdgeGRUError, match=r"must have shape \[2, 16\]"):
        golden_step(model, np.zeros((2, 12), np.int8), [np.zeros((3, 16), np.int8)])


def test_empty_calibration_set_is_refused(small_checkpoint):
    empty = Split(np.zeros((0, 5, 12), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
    with pytest.raises(EdgeGRUError, match="calibration set is empty"):
        observe(small_checkpoint.model, empty, small_checkpoint.normalization)


def test_a_model_that_could_overflow_is_refused(small_checkpoint, japanese_vowels):
    """int8 weights alone cannot overflow int32 at this size, so push a bias to just below 2^31:
    the bias fits int32 but bias + the largest weighted input sum does not."""
    import copy

    import torch

    observations = observe(small_checkpoint.model, japanese_vowels.train, small_checkpoint.normalization)
    model = quantize_model(small_checkpoint, observations, "int8")
    input_scale = model.tensors["l0.h"].scale
    weight_scale = model.weight_scales["l0.W_hz"][0]
    risky = copy.deepcopy(small_checkpoint)
    H = risky.model.config.hidden
    with torch.no_grad():
        risky.model.grus[0].bias_hh[H] = (2**31 - 100) * input_scale * weight_scale  # first channel of z
    with pytest.raises(EdgeGRUError, match=r"l0.hz: the accumulator can reach \d+, beyond 32 bits"):
        quantize_model(risky, observations, "int8")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_artifact_round_trip_is_exact(tmp_path, quantized, japanese_vowels, scheme):
    save_artifact(tmp_path, quantized[scheme])
    loaded = load_artifact(tmp_path)
    split = Split(japanese_vowels.test.x[:30], japanese_vowels.test.lengths[:30], japanese_vowels.test.y[:30])
    assert (golden_predict(loaded, split) == golden_predict(quantized[scheme], split)).all()
    x_q = quantize_features(loaded, split.x[:, 0])
    a = run_ops(loaded.ops, {"x": x_q, "l0.h": initial_states(loaded, 30)[0]}, integer_kernels(loaded, "double"))
    b = run_ops(loaded.ops, {"x": x_q, "l0.h": initial_states(loaded, 30)[0]}, integer_kernels(quantized[scheme], "double"))
    assert all((a[k] == b[k]).all() for k in a)
    for name, params in quantized[scheme].op_params.items():  # every prepared value, as prepared
        assert type(loaded.op_params[name]) is type(params)
        for key, value in dataclasses.asdict(params).items():
            assert np.array_equal(getattr(loaded.op_params[name], key), value), (name, key)


def test_artifact_of_another_version_is_refused(tmp_path, quantized):
    save_artifact(tmp_path, quantized["int8"])
    spec = json.loads((tmp_path / "spec.json").read_text())
    spec["version"] = 99
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(EdgeGRUError, match="artifact version 99"):
        load_artifact(tmp_path)


def test_corrupted_tensor_is_refused(tmp_path, quantized):
    save_artifact(tmp_path, quantized["int8"])
    import io
    with np.load(tmp_path / "model.npz") as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["weight/l0.W_hz"][0, 0] ^= 1
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (tmp_path / "model.npz").write_bytes(buffer.getvalue())
    with pytest.raises(EdgeGRUError, match="'weight/l0.W_hz' is corrupted"):
        load_artifact(tmp_path)


def test_missing_or_foreign_artifact(tmp_path):
    with pytest.raises(EdgeGRUError, match="run `edgegru quantize` first"):
        load_artifact(tmp_path)
    (tmp_path / "spec.json").write_text('{"hello": 1}')
    (tmp_path / "model.npz").write_bytes(b"")
    with pytest.raises(EdgeGRUError, match="not an EdgeGRU quantized model"):
        load_artifact(tmp_path)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_model_carries_its_resolved_scheme_and_prepared_values(quantized, scheme):
    model = quantized[scheme]
    spec = model.scheme_spec
    assert spec is get_scheme(scheme) and spec.name == model.scheme
    for op in model.ops:
        p = model.op_params[op.output]
        if op.kind == "fully_connected":
            if spec.q15_fully_connected:
                assert (p.output_multiplier_q15 == q15_multiplier(p.output_multiplier)).all()
            else:
                assert p.output_multiplier_q15 is None
        elif op.kind in ("logistic", "tanh"):
            assert (model.tensors[op.output].scale, model.tensors[op.output].zero_point) == spec.fixed_output(op.kind)
            if not spec.lookup_activations:
                assert p.input_multiplier > 0  # resolved: never the runtimes' 0 for a power-of-two scale


@pytest.mark.parametrize("scheme", SCHEMES)
def test_tensor_widths_are_the_widths_the_golden_step_computes(quantized, scheme):
    model = quantized[scheme]
    x_q = quantize_features(model, np.zeros((3, model.config["input_size"]), np.float32))
    inputs = {"x": x_q, **{h_in: state for (h_in, _), state in zip(model.states, initial_states(model, 3))}}
    tensors = run_ops(model.ops, inputs, integer_kernels(model, "double"))
    assert model.tensor_widths == {name: array.shape[1] for name, array in tensors.items()}


QUANTIZE_AND_SAVE = """
import sys, torch
torch.set_num_threads(1)
from edgegru.artifact import save_artifact
from edgegru.calibrate import observe
from edgegru.checkpoint import load_checkpoint
from edgegru.data import load_dataset
from edgegru.quantize import quantize_model
checkpoint = load_checkpoint(sys.argv[1])
observations = observe(checkpoint.model, load_dataset("digits").train, checkpoint.normalization)
for scheme in ("int8", "int16x8"):
    save_artifact(sys.argv[2] + "/" + scheme, quantize_model(checkpoint, observations, scheme))
"""


def test_quantization_is_deterministic_across_processes(tmp_path, digits):
    """Quantizing one checkpoint in two fresh interpreters (different hash seeds) gives the same spec.json
    and the same integer tensors, byte for byte."""
    from edgegru.train import TrainConfig, train

    checkpoint, _ = train(digits, TrainConfig(hidden=8, epochs=2), progress=False)
    save_checkpoint(tmp_path / "model.pt", checkpoint)
    for hash_seed in ("1", "2"):
        in_a_fresh_interpreter(QUANTIZE_AND_SAVE, str(tmp_path / "model.pt"), str(tmp_path / hash_seed),
                               hash_seed=hash_seed)
    for scheme in SCHEMES:
        first, second = tmp_path / "1" / scheme, tmp_path / "2" / scheme
        assert (first / "spec.json").read_bytes() == (second / "spec.json").read_bytes()
        with np.load(first / "model.npz") as a, np.load(second / "model.npz") as b:
            assert a.files == b.files and len(a.files) > 6
            for key in a.files:
                assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key


def test_per_tensor_weight_scale_gives_one_multiplier_in_every_runtime():
    """tflite-runtime's per-tensor FULLY_CONNECTED takes s_in * s_w in float32; the chosen weight scale makes
    that product give the multiplier of the double product, and moves s_w by far less than a weight LSB."""
    from edgegru.fixedpoint import quantize_multiplier
    from edgegru.quantize import per_tensor_weight_scale

    rng = np.random.default_rng(3)
    differed = 0
    for _ in range(50):
        s_in, s_w, s_out = (float(np.float32(v)) for v in 10 ** rng.uniform(-3, -1, 3))
        product32 = float(np.float32(np.float32(s_in) * np.float32(s_w)))
        differed += quantize_multiplier(s_in * s_w / s_out) != quantize_multiplier(product32 / s_out)
        chosen = per_tensor_weight_scale(s_in, s_w, s_out)
        chosen32 = float(np.float32(np.float32(s_in) * np.float32(chosen)))
        assert quantize_multiplier(s_in * chosen / s_out) == quantize_multiplier(chosen32 / s_out)
        assert abs(chosen - s_w) <= 1e-4 * s_w
    assert differed > 25  # without the choice, most scales disagree


def test_per_tensor_weights_share_one_scale_per_matrix(small_checkpoint, japanese_vowels):
    observations = observe(small_checkpoint.model, japanese_vowels.train, small_checkpoint.normalization)
    model = quantize_model(small_checkpoint, observations, "int8", weights="per-tensor")
    assert model.weight_granularity == "per-tensor"
    for name, scales in model.weight_scales.items():
        assert len(set(scales.tolist())) == 1 and np.abs(model.weights[name]).max() <= 127, name
    with pytest.raises(EdgeGRUError, match="unknown weight granularity 'per-row'"):
        quantize_model(small_checkpoint, observations, "int8", weights="per-row")
