"""What the generated C knows of a quantized model: tensor widths and C names, the folded biases, the
state's size, the MACs of a step and the reset function.  Shared by the generic step (`codegen`) and
the fused int8 step (`codegen_int8`)."""

from __future__ import annotations

import numpy as np

from edgegru.errors import EdgeGRUError
from edgegru.quantize import QuantizedModel
from firmware_sim.c_text import INT32_MAX, INT32_MIN


def folded_bias(model: QuantizedModel, op) -> np.ndarray:
    """int32 bias the kernel starts its accumulator from (int8: input zero point folded in)."""
    weights = model.weights[op.weight].astype(np.int64)
    bias = model.biases[op.weight].astype(np.int64)
    zero_point = int(model.tensors[op.inputs[0]].zero_point)
    folded = bias - zero_point * weights.sum(axis=1)
    if folded.min(initial=0) < INT32_MIN or folded.max(initial=0) > INT32_MAX:
        raise EdgeGRUError(f"{op.output}: bias does not fit int32 after folding the input zero point")
    return folded


def tensor_widths(model: QuantizedModel) -> dict[str, int]:
    """Element count of every tensor of the step graph."""
    cfg = model.config
    widths = {"x": cfg["input_size"], **{h: cfg["hidden"] for pair in model.states for h in pair}}
    for op in model.ops:
        widths[op.output] = len(model.weights[op.weight]) if op.kind == "fully_connected" else widths[op.inputs[0]]
    return widths


def c_name(model: QuantizedModel, tensor: str) -> str:
    """The C expression holding a tensor inside `<name>_step`: features, logits, a state array, or a local."""
    if tensor == "x":
        return "features"
    if tensor == "logits":
        return "logits"
    for h_in, h_out in model.states:
        if tensor in (h_in, h_out):
            return "state->" + h_in.replace(".", "_")
    return tensor.replace(".", "_")


def describe(model: QuantizedModel, tensor: str) -> str:
    """`int8[64], scale 0.0123, zp -3`: a tensor's type, width and quantization, for comments."""
    q = model.tensors[tensor]
    return f"{q.dtype}[{tensor_widths(model)[tensor]}], scale {float(q.scale)!r}, zp {int(q.zero_point)}"


def macs_per_step(model: QuantizedModel) -> int:
    """Multiply-accumulates of one step: every FULLY_CONNECTED's weight count."""
    return int(sum(model.weights[op.weight].size for op in model.ops if op.kind == "fully_connected"))


def state_bytes(model: QuantizedModel) -> int:
    """Bytes of `<name>_state_t`: one activation per hidden unit per layer."""
    return len(model.states) * model.config["hidden"] * np.dtype(model.tensors["x"].dtype).itemsize


def reset_function(model: QuantizedModel, name: str) -> str:
    """`<name>_reset` (every state element to its zero point), with the check of `<NAME>_STATE_BYTES`."""
    upper = name.upper()
    resets = "".join(
        f"    for (i = 0; i < {upper}_HIDDEN; ++i) {{\n        state->{h_in.replace('.', '_')}[i] = "
        f"{int(model.tensors[h_in].zero_point)};\n    }}\n" for h_in, _ in model.states)
    return f"""/* The header's sizes are the C types' sizes (a negative array size fails the build otherwise). */
typedef char {name}_state_bytes_check[sizeof({name}_state_t) == {upper}_STATE_BYTES ? 1 : -1];

void {name}_reset({name}_state_t *state)
{{
    int32_t i;
{resets}}}
"""
