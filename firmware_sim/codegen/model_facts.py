"""What the generated C knows of a quantized model beyond the artifact: tensors' C names, the folded
biases, the state's size, the MACs of a step and the reset function (tensor widths are
`QuantizedModel.tensor_widths`).  Shared by the header (`model_source`), the generic step
(`generic_step`) and the fused int8 step (`fused_int8_step`)."""

from __future__ import annotations

import numpy as np

from edgegru.errors import EdgeGRUError
from edgegru.quantize import QuantizedModel
from firmware_sim.codegen.c_text import INT32_MAX, INT32_MIN

C_TYPES = {"int8": "int8_t", "int16": "int16_t"}


def folded_bias(model: QuantizedModel, op) -> np.ndarray:
    """int32 bias the kernel starts its accumulator from (int8: input zero point folded in)."""
    weights = model.weights[op.weight].astype(np.int64)
    bias = model.biases[op.weight].astype(np.int64)
    zero_point = int(model.tensors[op.inputs[0]].zero_point)
    folded = bias - zero_point * weights.sum(axis=1)
    if folded.min(initial=0) < INT32_MIN or folded.max(initial=0) > INT32_MAX:
        raise EdgeGRUError(f"{op.output}: bias does not fit int32 after folding the input zero point")
    return folded


def activation_c_type(model: QuantizedModel) -> str:
    """The C type of features, logits and state: int8_t or int16_t."""
    return C_TYPES[model.tensors["x"].dtype]


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
    return f"{q.dtype}[{model.tensor_widths[tensor]}], scale {float(q.scale)!r}, zp {int(q.zero_point)}"


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
