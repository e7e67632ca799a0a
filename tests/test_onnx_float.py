
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgegru.checkpoint import save_checkpoint
from edgegru.train import TrainConfig, as_tensors, train
from export.onnx_float import float_onnx_model
from tests.conftest import in_a_fresh_interpreter


@pytest.fixture(scope="module", params=[("reset_after", 1), ("reset_before", 2)], ids=["reset_after-1", "reset_before-2"])
def float_pair(request, japanese_vowels):
    variant, layers = request.param
    checkpoint, _ = train(japanese_vowels, TrainConfig(hidden=16, epochs=2, variant=variant, layers=layers), progress=False)
    model = float_onnx_model(checkpoint)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return checkpoint, model, session


def test_the_model_uses_the_onnx_gru_op_with_the_variants_reset(float_pair):
    checkpoint, model, _ = float_pair
    grus = [n for n in model.graph.node if n.op_type == "GRU"]
    assert len(grus) == checkpoint.model.config.layers
    expected = 1 if checkpoint.model.config.variant == "reset_after" else 0
    assert all(onnx.helper.get_attribute_value(a) == expected for n in grus for a in n.attribute if a.name == "linear_before_reset")
    onnx.checker.check_model(model, full_check=True)


def test_whole_sequences_match_torch(float_pair, japanese_vowels):
    checkpoint, _, session = float_pair
    x, lengths, _ = as_tensors(japanese_vowels.test, checkpoint.normalization)
    layers, hidden = checkpoint.model.config.layers, checkpoint.model.config.hidden
    logits, _ = session.run(None, {"x": x.numpy(), "sequence_lens": lengths.numpy().astype(np.int32),
                                   "initial_h": np.zeros((layers, len(x), hidden), np.float32)})
    with torch.no_grad():
        expected = checkpoint.model(x, lengths).numpy()
    assert np.abs(logits - expected).max() <= 1e-5


def test_streaming_one_step_at_a_time_matches_torch(float_pair, japanese_vowels):
    checkpoint, _, session = float_pair
    x, _, _ = as_tensors(japanese_vowels.test, checkpoint.normalization)
    x = x[:20, :7]  # every test sequence has at least 7 steps
    config = checkpoint.model.config
    y_h = np.zeros((config.layers, len(x), config.hidden), np.float32)
    states = [torch.zeros(len(x), config.hidden) for _ in range(config.layers)]
    for t in range(x.shape[1]):
        logits, y_h = session.run(None, {"x": x[:, t : t + 1].numpy(), "sequence_lens": np.ones(len(x), np.int32),
                                         "initial_h": y_h})
        with torch.no_grad():
            expected, states = checkpoint.model.step(x[:, t], states)
        assert np.abs(logits - expected.numpy()).max() <= 1e-5
        assert np.abs(y_h - torch.stack(states).numpy()).max() <= 1e-5


def test_same_checkpoint_gives_identical_bytes_in_a_fresh_interpreter(float_pair, tmp_path):
    checkpoint, model, _ = float_pair
    save_checkpoint(tmp_path / "model.pt", checkpoint)
    code = ("import sys; from edgegru.checkpoint import load_checkpoint; from export.onnx_float import "
            "float_onnx_model; sys.stdout.buffer.write(float_onnx_model(load_checkpoint(sys.argv[1]))"
            ".SerializeToString())")
    assert in_a_fresh_interpreter(code, str(tmp_path)) == model.SerializeToString()
