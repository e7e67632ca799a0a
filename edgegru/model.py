"""The float GRU classifier: 1 or 2 GRU layers over normalized features, then a linear head.

Two formulations of the candidate state n (gate order r, z, n in every weight, as PyTorch and ONNX):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    reset_after  (PyTorch/cuDNN, ONNX linear_before_reset=1): n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    reset_before (Cho et al. 2014, ONNX linear_before_reset=0): n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)
    h' = (1 - z) * n + z * h

Padding never enters the state: past a sequence's true length h is carried unchanged, so the final
state is the state at the true last step, and the head reads it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

VARIANTS = ("reset_after", "reset_before")


@dataclass(frozen=True)
class ModelConfig:
    input_size: int
    hidden: int
    num_classes: int
    layers: int = 1
    variant: str = "reset_after"

    def as_dict(self) -> dict:
        return asdict(self)


class GRULayer(nn.Module):
    """One GRU layer; weights `weight_ih` [3H, I], `weight_hh` [3H, H], biases [3H]."""

    def __init__(self, input_size: int, hidden: int, variant: str):
        super().__init__()
        self.hidden, self.variant = hidden, variant
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden, hidden))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden))
        bound = hidden**-0.5
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def step(self, x_projection: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """h' from the input projection W_ih x + b_ih ([B, 3H]) and the previous state h ([B, H])."""
        H = self.hidden
        xr, xz, xn = x_projection.split(H, dim=1)
        if self.variant == "reset_after":
            hr, hz, hn = torch.addmm(self.bias_hh, h, self.weight_hh.T).split(H, dim=1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
        else:
            hr, hz = torch.addmm(self.bias_hh[: 2 * H], h, self.weight_hh[: 2 * H].T).split(H, dim=1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + torch.addmm(self.bias_hh[2 * H :], r * h, self.weight_hh[2 * H :].T))
        return n + z * (h - n)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, I], lengths [B], h [B, H] -> (states [B, T, H], final state [B, H])."""
        projections = x @ self.weight_ih.T + self.bias_ih
        states = []
        # unbind, not projections[:, t]: the same values, but indexing's backward writes each step's
        # gradient into a zero tensor of the whole [B, T, 3H] and sums T of them (3-5x slower training)
        for t, projection in enumerate(projections.unbind(1)):
            new_h = self.step(projection, h)
            h = torch.where((t < lengths)[:, None], new_h, h)
            states.append(h)
        return torch.stack(states, dim=1), h


class GRUClassifier(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {config.variant!r}")
        self.config = config
        sizes = [config.input_size] + [config.hidden] * config.layers
        self.grus = nn.ModuleList(GRULayer(i, config.hidden, config.variant) for i in sizes[:-1])
        self.head = nn.Linear(config.hidden, config.num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Normalized features x [B, T, F] and true lengths [B] -> logits [B, classes]."""
        h = x
        for gru in self.grus:
            h, final = gru(h, lengths, x.new_zeros(x.shape[0], self.config.hidden))
        return self.head(final)

    def step(self, x: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One time step for streaming: x [B, F], one state [B, H] per layer -> (logits, new states)."""
        new_states = []
        h = x
        for gru, state in zip(self.grus, states):
            h = gru.step(h @ gru.weight_ih.T + gru.bias_ih, state)
            new_states.append(h)
        return self.head(h), new_states


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
