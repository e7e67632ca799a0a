"""The baseline a user would otherwise pick: torch.ao dynamic int8 quantization (float activations).

torch.ao quantizes `nn.GRU` and `nn.Linear` dynamically; `nn.GRU` is the reset_after formulation only,
so a reset_before model has no such baseline (None).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from edgegru.checkpoint import Checkpoint
from edgegru.data import Split
from edgegru.train import as_tensors


class _TorchGRUClassifier(nn.Module):
    def __init__(self, checkpoint: Checkpoint):
        super().__init__()
        config = checkpoint.model.config
        self.gru = nn.GRU(config.input_size, config.hidden, num_layers=config.layers, batch_first=True)
        with torch.no_grad():
            for k, layer in enumerate(checkpoint.model.grus):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(self.gru, f"{name}_l{k}").copy_(getattr(layer, name))
        self.head = checkpoint.model.head

    def forward(self, x, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)
        return self.head(h[-1])


def dynamic_int8_accuracy(checkpoint: Checkpoint, split: Split) -> float | None:
    if checkpoint.model.config.variant != "reset_after":
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        model = torch.ao.quantization.quantize_dynamic(
            _TorchGRUClassifier(checkpoint).eval(), {nn.GRU, nn.Linear}, dtype=torch.qint8)
        x, lengths, y = as_tensors(split, checkpoint.normalization)
        with torch.no_grad():
            predictions = model(x, lengths).argmax(1).numpy()
    return float(np.mean(predictions == y.numpy()))
