import pytest
import torch

from edgegru.model import GRUClassifier, ModelConfig
from tests.conftest import in_a_fresh_interpreter


def make_model(variant="reset_after", layers=1, seed=0):
    torch.manual_seed(seed)
    return GRUClassifier(ModelConfig(input_size=5, hidden=8, num_classes=3, layers=layers, variant=variant)).eval()


def test_reset_after_is_pytorchs_gru():
    model = make_model("reset_after")
    reference = torch.nn.GRU(5, 8, batch_first=True)
    layer = model.grus[0]
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(reference, f"{name}_l0").copy_(getattr(layer, name))
    x = torch.randn(4, 9, 5)
    _, expected = reference(x)
    _, final = layer(x, torch.full((4,), 9), torch.zeros(4, 8))
    torch.testing.assert_close(final, expected[0], rtol=1e-5, atol=1e-6)


def test_reset_before_applies_the_reset_gate_before_the_matrix():
    layer = make_model("reset_before").grus[0]
    x, h = torch.randn(3, 5), torch.randn(3, 8)
    W_ir, W_iz, W_in = layer.weight_ih.chunk(3)
    W_hr, W_hz, W_hn = layer.weight_hh.chunk(3)
    b_ir, b_iz, b_in = layer.bias_ih.chunk(3)
    b_hr, b_hz, b_hn = layer.bias_hh.chunk(3)
    r = torch.sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = torch.sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = torch.tanh(x @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
    expected = (1 - z) * n + z * h
    torch.testing.assert_close(layer.step(x @ layer.weight_ih.T + layer.bias_ih, h), expected)
    layer.variant = "reset_after"
    assert not torch.allclose(layer.step(x @ layer.weight_ih.T + layer.bias_ih, h), expected)


@pytest.mark.parametrize("variant", ["reset_after", "reset_before"])
@pytest.mark.parametrize("layers", [1, 2])
def test_padding_never_enters_the_state(variant, layers):
    model = make_model(variant, layers)
    x = torch.randn(2, 6, 5)
    padded = torch.cat([x, torch.randn(2, 4, 5) * 100], dim=1)
    torch.testing.assert_close(model(padded, torch.tensor([6, 6])), model(x, torch.tensor([6, 6])))
    short = model(x[:1, :3], torch.tensor([3]))
    torch.testing.assert_close(model(x, torch.tensor([3, 6]))[:1], short)


@pytest.mark.parametrize("variant", ["reset_after", "reset_before"])
def test_streaming_steps_equal_the_whole_sequence(variant):
    model = make_model(variant, layers=2)
    x = torch.randn(3, 7, 5)
    states = [torch.zeros(3, 8), torch.zeros(3, 8)]
    with torch.no_grad():
        for t in range(7):
            logits, states = model.step(x[:, t], states)
        torch.testing.assert_close(logits, model(x, torch.full((3,), 7)))


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="variant must be one of"):
        make_model("reset_sometimes")


TRAIN_AND_DUMP = """
import sys, torch
torch.set_num_threads(1)
from edgegru.data import load_dataset
from edgegru.train import TrainConfig, train
digits = load_dataset("digits")
for seed, path in zip((0, 1), sys.argv[1:]):
    checkpoint, _ = train(digits, TrainConfig(hidden=8, epochs=2, seed=seed), progress=False)
    with open(path, "wb") as f:
        for name, tensor in checkpoint.model.state_dict().items():
            f.write(name.encode() + b"\\0" + tensor.numpy().tobytes())
"""


def test_training_is_deterministic_across_processes(tmp_path):
    """The same seed trains the same weights, byte for byte, in two fresh interpreters (with different
    hash seeds); another seed trains other weights."""
    for hash_seed, outputs in (("1", ["a0", "a1"]), ("2", ["b0"])):
        in_a_fresh_interpreter(TRAIN_AND_DUMP, *(str(tmp_path / o) for o in outputs), hash_seed=hash_seed)
    first, again, other = ((tmp_path / name).read_bytes() for name in ("a0", "b0", "a1"))
    assert len(first) > 8 * 8 * 3 * 4 and first == again
    assert other != first
