"""One GRU time step as a graph of TFLite-style operators: the single source of the decomposition.

Every stage reads this list: calibration evaluates it in float, the golden model in integers, the
TFLite writer transcribes it op for op, the C generator emits it.  Tensor names are per layer
(`l0.xr`, `l1.h_new`, ...); the graph input is `x`, each layer's state input is `lK.h`, the outputs are
every `lK.h_new` (fed back as `lK.h` on the next step) and `logits`.

Per layer, gate order r, z, n as in PyTorch/ONNX, with weights W_ir.. (from `weight_ih`) and W_hr..
(from `weight_hh`):

    xr = FC(x, W_ir, b_ir)      hr = FC(h, W_hr, b_hr)      r = LOGISTIC(ADD(xr, hr))
    xz = FC(x, W_iz, b_iz)      hz = FC(h, W_hz, b_hz)      z = LOGISTIC(ADD(xz, hz))
    xn = FC(x, W_in, b_in)
    reset_after:   hn = FC(h, W_hn, b_hn);   n_pre = ADD(xn, MUL(r, hn))
    reset_before:  r_h = MUL(r, h);  hn = FC(r_h, W_hn, b_hn);   n_pre = ADD(xn, hn)
    n = TANH(n_pre)
    h_new = ADD(n, MUL(z, SUB(h, n)))          # = (1 - z) * n + z * h

and after the last layer `logits = FC(h_new, W_head, b_head)`: 6 FULLY_CONNECTED, 4 ADD, 2 MUL, 1 SUB,
2 LOGISTIC, 1 TANH per layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Op:
    kind: str
    inputs: tuple[str, ...]
    output: str
    weight: str | None = None  # name of the FULLY_CONNECTED's weight and bias, e.g. "l0.W_ir"


def layer_ops(layer: int, variant: str, layer_input: str) -> list[Op]:
    """The ops of one GRU layer reading `layer_input` and its own state `lK.h`."""
    p = f"l{layer}."
    h = p + "h"

    def fc(source, gate, kind):
        return Op("fully_connected", (source,), p + kind[0] + gate, weight=f"{p}W_{kind[0]}{gate}")

    ops = [
        fc(layer_input, "r", "x"), fc(h, "r", "h"), Op("add", (p + "xr", p + "hr"), p + "r_pre"),
        Op("logistic", (p + "r_pre",), p + "r"),
        fc(layer_input, "z", "x"), fc(h, "z", "h"), Op("add", (p + "xz", p + "hz"), p + "z_pre"),
        Op("logistic", (p + "z_pre",), p + "z"),
        fc(layer_input, "n", "x"),
    ]
    if variant == "reset_after":
        ops += [fc(h, "n", "h"), Op("mul", (p + "r", p + "hn"), p + "r_hn"),
                Op("add", (p + "xn", p + "r_hn"), p + "n_pre")]
    elif variant == "reset_before":
        ops += [Op("mul", (p + "r", h), p + "r_h"),
                Op("fully_connected", (p + "r_h",), p + "hn", weight=f"{p}W_hn"),
                Op("add", (p + "xn", p + "hn"), p + "n_pre")]
    else:
        raise ValueError(f"unknown GRU variant {variant!r}")
    ops += [
        Op("tanh", (p + "n_pre",), p + "n"),
        Op("sub", (h, p + "n"), p + "h_minus_n"),
        Op("mul", (p + "z", p + "h_minus_n"), p + "z_h_minus_n"),
        Op("add", (p + "n", p + "z_h_minus_n"), p + "h_new"),
    ]
    return ops


def step_ops(variant: str, layers: int) -> list[Op]:
    """All ops of one time step, in execution order, ending with the head."""
    ops, source = [], "x"
    for layer in range(layers):
        ops += layer_ops(layer, variant, source)
        source = f"l{layer}.h_new"
    return ops + [Op("fully_connected", (source,), "logits", weight="head")]


def state_names(layers: int) -> list[tuple[str, str]]:
    """(state input, state output) per layer: `lK.h` in, `lK.h_new` out."""
    return [(f"l{k}.h", f"l{k}.h_new") for k in range(layers)]


def tensor_widths(config: dict, ops: list[Op] | None = None) -> dict[str, int]:
    """Element count (per batch row) of every tensor of the step graph: `x` has input_size elements,
    states and every gate tensor hidden, `logits` num_classes.  A FULLY_CONNECTED's width is its
    weight's row count (num_classes for the head), an elementwise op's that of its first input.
    `ops`: the config's `step_ops`, if the caller has them already."""
    if ops is None:
        ops = step_ops(config["variant"], config["layers"])
    widths = {"x": config["input_size"]}
    widths.update({name: config["hidden"] for pair in state_names(config["layers"]) for name in pair})
    for op in ops:
        if op.kind == "fully_connected":
            widths[op.output] = config["num_classes"] if op.weight == "head" else config["hidden"]
        else:
            widths[op.output] = widths[op.inputs[0]]
    return widths


def run_ops(ops: list[Op], tensors: dict, kernels: dict[str, Callable]) -> dict:
    """Evaluate `ops` in order; `kernels[kind](op, *inputs)` computes one op's output.

    `tensors` holds the graph inputs and receives every intermediate, so callers can read any of them.
    """
    for op in ops:
        tensors[op.output] = kernels[op.kind](op, *(tensors[name] for name in op.inputs))
    return tensors


def float_weights(model) -> dict[str, tuple]:
    """(W [out, in], b [out]) in float64 numpy for every `weight` name of the graph."""
    weights = {}
    for k, gru in enumerate(model.grus):
        w_ih, w_hh = gru.weight_ih.detach().double().numpy(), gru.weight_hh.detach().double().numpy()
        b_ih, b_hh = gru.bias_ih.detach().double().numpy(), gru.bias_hh.detach().double().numpy()
        H = gru.hidden
        for g, gate in enumerate("rzn"):
            rows = slice(g * H, (g + 1) * H)
            weights[f"l{k}.W_x{gate}"] = (w_ih[rows], b_ih[rows])
            weights[f"l{k}.W_h{gate}"] = (w_hh[rows], b_hh[rows])
    weights["head"] = (model.head.weight.detach().double().numpy(), model.head.bias.detach().double().numpy())
    return weights
