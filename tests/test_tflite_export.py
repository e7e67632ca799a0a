"""The one-step TFLite export: bit-exact against the golden model in every reference runtime."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from edgegru.artifact import load_artifact, save_artifact
from edgegru.calibrate import observe
from edgegru.errors import EdgeGRUError
from edgegru.quantize import quantize_model
from edgegru.train import TrainConfig, as_tensors, train
from export.onnx_integer import quantized_step_onnx
from export.onnx_runtimes import load_onnx_runner
from export.tflite_export import float_step_tflite, quantized_step_tflite
from export.tflite_runtimes import load_runner
from tests.conftest import in_a_fresh_interpreter
from export.verify import (get_backends, golden_accuracy, golden_trace, onnx_step, tflite_step, verification_streams,
                           verify_backend)

# litert: XNNPACK for int8 in the host's profile; litert-arm64: LiteRT's Arm build under QEMU
TFLITE_BACKENDS = ["tflm", "tflite-runtime", "litert-ref", "litert", "litert-arm64"]


def verify(model, backend_names, split, max_sequences):
    """Export `model` in memory and verify it on TFLite/ONNX backends against the golden model:
    {"golden_accuracy": {rounding: accuracy}, "backends": {name: export.verify.verify_backend's result}}."""
    x_q, lengths, y = verification_streams(model, split, max_sequences)
    traces, results = {}, {}
    for backend in get_backends(backend_names):
        if backend.rounding not in traces:
            traces[backend.rounding] = golden_trace(model, x_q, lengths, backend.rounding)
        if backend.deploys == "tflite":
            step = tflite_step(model, load_runner(backend.runtime, quantized_step_tflite(model)))
        else:
            step = onnx_step(model, load_onnx_runner(backend.runtime, quantized_step_onnx(model).SerializeToString()))
        results[backend.name] = verify_backend(model, backend, step, x_q, lengths, y,
                                               traces[backend.rounding], progress=False)
    return {"golden_accuracy": golden_accuracy(traces, lengths, y), "backends": results}


@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_every_tflite_runtime_is_bit_exact(quantized, japanese_vowels, scheme):
    report = verify(quantized[scheme], TFLITE_BACKENDS, japanese_vowels.test, max_sequences=120)
    for name in TFLITE_BACKENDS:
        result = report["backends"][name]
        assert result["elements"] > 120 * 7 * 16 and result["mismatches"] == 0, (name, result)


@pytest.fixture(scope="module")
def two_layer(japanese_vowels):
    checkpoint, _ = train(japanese_vowels, TrainConfig(hidden=12, layers=2, epochs=3, variant="reset_before"),
                          progress=False)
    observations = observe(checkpoint.model, japanese_vowels.train, checkpoint.normalization)
    return checkpoint, {s: quantize_model(checkpoint, observations, s) for s in ("int8", "int16x8")}


@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_two_layers_are_bit_exact_in_tflm(two_layer, japanese_vowels, scheme):
    report = verify(two_layer[1][scheme], ["tflm", "tflite-runtime"], japanese_vowels.test, max_sequences=40)
    assert all(r["mismatches"] == 0 for r in report["backends"].values())


def test_int8_graph_is_all_integer(quantized):
    from tflite_micro.python.tflite_micro.runtime import schema_fb

    data = quantized_step_tflite(quantized["int8"])
    model = schema_fb.ModelT.InitFromObj(schema_fb.Model.GetRootAsModel(data, 0))
    float_type = schema_fb.TensorType.FLOAT32
    assert all(t.type != float_type for t in model.subgraphs[0].tensors)


@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_file_size_is_within_1_5x_weights_plus_4kb_at_hidden_64(japanese_vowels, scheme):
    from edgegru.checkpoint import Checkpoint
    from edgegru.model import GRUClassifier, ModelConfig

    torch.manual_seed(0)
    model = GRUClassifier(ModelConfig(12, 64, 9)).eval()  # the size does not depend on training
    checkpoint = Checkpoint(model, japanese_vowels.normalization(), [str(i) for i in range(9)], "japanese-vowels")
    observations = observe(model, japanese_vowels.train, checkpoint.normalization, max_sequences=16)
    quantized = quantize_model(checkpoint, observations, scheme)
    assert len(quantized_step_tflite(quantized)) <= 1.5 * quantized.weight_bytes() + 4096


@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_same_artifact_gives_identical_bytes_in_a_fresh_interpreter(tmp_path, quantized, scheme):
    save_artifact(tmp_path, quantized[scheme])
    code = ("import sys; from edgegru.artifact import load_artifact; from export.tflite_export import "
            "quantized_step_tflite; sys.stdout.buffer.write(quantized_step_tflite(load_artifact(sys.argv[1])))")
    assert in_a_fresh_interpreter(code, str(tmp_path)) == quantized_step_tflite(quantized[scheme])


def test_float_step_model_matches_torch(two_layer, japanese_vowels):
    checkpoint = two_layer[0]
    runner = load_runner("tflite-runtime", float_step_tflite(checkpoint))
    x, _, _ = as_tensors(japanese_vowels.test, checkpoint.normalization)
    hidden = checkpoint.model.config.hidden
    for sequence in x[:10]:
        states = [torch.zeros(1, hidden), torch.zeros(1, hidden)]
        for t in range(7):
            out = runner.run({"x": sequence[t : t + 1].numpy(), "l0.h": states[0].numpy(), "l1.h": states[1].numpy()})
            with torch.no_grad():
                logits, states = checkpoint.model.step(sequence[t : t + 1], states)
            assert np.abs(out["logits"] - logits.numpy()).max() <= 1e-5
            assert np.abs(out["l1.h_new"] - states[1].numpy()).max() <= 1e-5


def test_a_model_that_does_not_match_the_artifact_is_refused(quantized):
    runner = load_runner("tflm", quantized_step_tflite(quantized["int8"]))
    with pytest.raises(EdgeGRUError, match="does not match the quantized artifact"):
        tflite_step(quantized["int16x8"], runner)


def test_wrong_dtype_step_input_is_refused(quantized):
    step = tflite_step(quantized["int8"], load_runner("tflm", quantized_step_tflite(quantized["int8"])))
    with pytest.raises(EdgeGRUError, match="expected dtype int8"):
        step(np.zeros((1, 12), np.int16), [np.zeros((1, 16), np.int8)])


def test_cli_quantize_export_verify(tmp_path):
    run = tmp_path / "run"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "edgegru", *args], capture_output=True, text=True)

    assert cli("train", "--dataset", "digits", "--hidden", "8", "--epochs", "2", "--out", str(run)).returncode == 0
    result = cli("quantize", str(run), "--scheme", "int8")
    assert result.returncode == 0, result.stderr
    import json
    quant = json.loads((run / "quant" / "int8" / "quant.json").read_text())
    for key in ("scheme", "calibration", "float_accuracy", "quant_accuracy", "dynamic_int8_accuracy", "weight_bytes",
                "max_accumulator_bits"):
        assert key in quant
    assert cli("export", str(run), "--scheme", "int8").returncode == 0
    assert (run / "export" / "int8" / "model.tflite").stat().st_size > 0
    result = cli("verify", str(run), "--scheme", "int8", "--backends", "tflm,litert-ref", "--max-sequences", "50")
    assert result.returncode == 0, result.stderr
    report = json.loads((run / "verify" / "int8.json").read_text())
    assert report["backends"]["tflm"]["mismatches"] == 0 and report["backends"]["tflm"]["steps"] == 400
    assert cli("export", str(run), "--scheme", "int8", "--format", "onnx").returncode == 0
    result = cli("verify", str(run), "--scheme", "int8", "--backends", "onnxruntime", "--max-sequences", "20")
    assert result.returncode == 0 and "onnxruntime" in result.stdout, result.stderr
    assert (run / "export" / "float" / "model.onnx").is_file() and (run / "export" / "int8" / "model.onnx").is_file()
    bad = cli("verify", str(run), "--backends", "tflm,coreml")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "unknown coreml; choose from tflm, tflite-runtime, litert-ref, litert, onnxruntime" in bad.stderr


@pytest.fixture(scope="module")
def per_tensor(small_checkpoint, japanese_vowels):
    observations = observe(small_checkpoint.model, japanese_vowels.train, small_checkpoint.normalization)
    return quantize_model(small_checkpoint, observations, "int8", weights="per-tensor")


def test_per_tensor_weights_are_bit_exact_everywhere_and_smaller(per_tensor, quantized, japanese_vowels, tmp_path):
    """One scale per weight matrix: the .tflite stores one float32 scale and one int64 zero point per
    weight instead of one per output channel (12 bytes each), and every TFLite runtime stays bit-exact."""
    for weight, scales in per_tensor.weight_scales.items():
        assert len(set(scales.tolist())) == 1, weight
    channels = sum(len(s) for s in per_tensor.weight_scales.values())
    saved = len(quantized_step_tflite(quantized["int8"])) - len(quantized_step_tflite(per_tensor))
    assert saved >= 12 * channels - 12 * len(per_tensor.weight_scales)
    save_artifact(tmp_path, per_tensor)
    assert load_artifact(tmp_path).weight_granularity == "per-tensor"
    report = verify(per_tensor, TFLITE_BACKENDS, japanese_vowels.test, max_sequences=120)
    for name, result in report["backends"].items():
        assert result["mismatches"] == 0, (name, result)
