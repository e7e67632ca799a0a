"""The generic int8/int16x8 step: one call of the per-operator kernels (`c/edgegru_kernels.h`) per op
of `step_graph.step_ops`, in order, the op parameters as `static const` data.  Every int16x8 model
takes it, and an int8 model the fused kernels refuse (`fused_int8_step.fused_int8_refusal`).

The parameters are the artifact's, emitted as the quantizer prepared them and never re-derived: the
16x8 FULLY_CONNECTED's `output_multiplier_q15` (the Q31 multiplier reduced to Q15 once, by
`fixedpoint.q15_multiplier`), the int16 LOGISTIC/TANH's effective `input_multiplier`/`input_left_shift`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgegru.errors import EdgeGRUError
from edgegru.quantize import QuantizedModel
from firmware_sim.codegen.c_text import c_array, c_int, c_struct
from firmware_sim.codegen.model_facts import activation_c_type, c_name, describe, folded_bias, reset_function


@dataclass(frozen=True)
class CKernels:
    """The generic kernels (edgegru_kernels.h) of one activation type, and what they compute."""

    fully_connected: str
    add: str
    sub: str
    mul: str
    logistic: str | None  # None: LOGISTIC and TANH are 256-entry tables (edgegru_lookup_int8)
    tanh: str | None
    q15_fully_connected: bool  # the FULLY_CONNECTED kernel requantizes with the prepared Q15 multiplier


# by `Scheme.activation`, as `integer_ops.KERNELS`
KERNELS = {
    "int8": CKernels("edgegru_fully_connected_int8", "edgegru_add_int8", "edgegru_sub_int8", "edgegru_mul_int8",
                     None, None, q15_fully_connected=False),
    "int16": CKernels("edgegru_fully_connected_int16x8", "edgegru_add_int16", "edgegru_sub_int16",
                      "edgegru_mul_int16", "edgegru_logistic_int16", "edgegru_tanh_int16", q15_fully_connected=True),
}


def c_kernels(model: QuantizedModel) -> CKernels:
    """The generic kernels of the model's scheme, or EdgeGRUError when none compute it as the golden model
    does (its activation type, its LOGISTIC/TANH form and its FULLY_CONNECTED requantization)."""
    spec = model.scheme_spec
    kernels = KERNELS.get(spec.activation)
    if (kernels is None or (kernels.logistic is None) != spec.lookup_activations
            or kernels.q15_fully_connected != spec.q15_fully_connected):
        raise EdgeGRUError(f"no C kernels for scheme {spec.name!r} ({spec.activation} activations)")
    return kernels


def generic_scratch_bytes(model: QuantizedModel) -> int:
    """Bytes of the generic step's static scratch: every intermediate tensor of the step graph."""
    itemsize = np.dtype(model.scheme_spec.activation).itemsize
    return itemsize * sum(model.tensor_widths[t] for t in _generic_locals(model))


def _generic_locals(model: QuantizedModel) -> list[str]:
    return [op.output for op in model.ops
            if op.output != "logits" and c_name(model, op.output) == op.output.replace(".", "_")]


def generic_step_source(model: QuantizedModel, name: str) -> str:
    """`<name>.c`: the step as one generic kernel call per op of `step_graph.step_ops` (module doc)."""
    act = activation_c_type(model)
    kernels = c_kernels(model)
    widths = model.tensor_widths
    narrowed_bias = np.dtype(model.scheme_spec.bias).itemsize > 4  # the artifact's int64 bias held in int32
    constants, calls = [], []
    for op in model.ops:
        p = model.op_params[op.output]
        symbol = f"{name}_{op.output.replace('.', '_')}"
        ins = ", ".join(_scratch_ref(model, name, t) for t in op.inputs)
        out = _scratch_ref(model, name, op.output)
        n = widths[op.output]
        operands = ", ".join(op.inputs + ((op.weight,) if op.weight else ()))
        comment = f"/* {op.output} = {op.kind.upper()}({operands}): {describe(model, op.output)} */\n"
        if op.kind == "fully_connected":
            w = model.weights[op.weight]
            rows, cols = w.shape
            if kernels.q15_fully_connected:  # the Q15 multiplier the quantizer prepared (fixedpoint.q15_multiplier)
                multiplier = ("/* Q15 in [0, 32767]: output_multiplier_q15, prepared at quantization time */\n"
                              + c_array("int16_t", f"{symbol}_multiplier_q15", p.output_multiplier_q15, per_line=8))
                multipliers = {"multiplier": "0", "multiplier_q15": f"{symbol}_multiplier_q15"}
            else:
                multiplier = c_array("int32_t", f"{symbol}_multiplier", p.output_multiplier, per_line=8)
                multipliers = {"multiplier": f"{symbol}_multiplier", "multiplier_q15": "0"}
            constants.append(
                comment
                + f"/* {op.weight}: int8 [{rows}][{cols}] row-major, symmetric per output channel */\n"
                + c_array("int8_t", f"{symbol}_weights", w, per_line=cols if cols <= 32 else 16)
                + ("/* at scale s_in * s_w[c]; |bias| < 2^31 by the accumulator bound */\n" if narrowed_bias
                   else "/* int32 at scale s_in * s_w[c]; the input zero point folded in */\n")
                + c_array("int32_t", f"{symbol}_bias", folded_bias(model, op), per_line=8)
                + multiplier
                + c_array("int32_t", f"{symbol}_shift", p.output_shift)
                + c_struct("edgegru_fc_params_t", symbol, {
                    "weights": f"{symbol}_weights", "bias": f"{symbol}_bias", **multipliers,
                    "shift": f"{symbol}_shift", "output_offset": c_int(p.output_offset), "rows": rows, "cols": cols}))
            calls.append(f"    {kernels.fully_connected}(&{symbol}, {ins}, {out});\n")
        elif op.kind in ("add", "sub"):
            constants.append(comment + c_struct("edgegru_add_params_t", symbol, {
                key: c_int(getattr(p, key)) for key in (
                    "input1_offset", "input2_offset", "output_offset", "left_shift", "input1_multiplier",
                    "input1_shift", "input2_multiplier", "input2_shift", "output_multiplier", "output_shift")}))
            calls.append(f"    {getattr(kernels, op.kind)}(&{symbol}, {ins}, {out}, {n});\n")
        elif op.kind == "mul":
            constants.append(comment + c_struct("edgegru_mul_params_t", symbol, {
                key: c_int(getattr(p, key)) for key in (
                    "input1_offset", "input2_offset", "output_offset", "output_multiplier", "output_shift")}))
            calls.append(f"    {kernels.mul}(&{symbol}, {ins}, {out}, {n});\n")
        elif kernels.logistic is None:  # logistic, tanh: the table built at quantization time
            constants.append(comment + "/* indexed by q + 128 */\n" + c_array("int8_t", f"{symbol}_table", p.table))
            calls.append(f"    edgegru_lookup_int8({symbol}_table, {ins}, {out}, {n});\n")
        else:  # logistic, tanh: the effective input rescaling the quantizer prepared (Int16ActivationParams)
            constants.append(comment + c_struct("edgegru_int16_activation_params_t", symbol, {
                "input_multiplier": c_int(p.input_multiplier), "input_left_shift": c_int(p.input_left_shift)}))
            calls.append(f"    {getattr(kernels, op.kind)}(&{symbol}, {ins}, {out}, {n});\n")

    fields = "".join(f"    {act} {c_name(model, t)}[{widths[t]}];\n" for t in _generic_locals(model))
    scratch = (f"/* Intermediates of the step graph (step_graph.step_ops); lK.h_new is written over lK.h. */\n"
               f"static struct {{\n{fields}}} {name}_scratch;\n" if fields else "")
    return f"""/* {name}: generated by firmware_sim/codegen (generic kernels); do not edit.  See {name}.h. */
#include "{name}.h"

#include "edgegru_kernels.h"

{chr(10).join(constants)}
{scratch}
typedef char {name}_scratch_bytes_check[sizeof({name}_scratch) == {name.upper()}_SCRATCH_BYTES ? 1 : -1];

{reset_function(model, name)}
void {name}_step({name}_state_t *state, const {act} *features, {act} *logits)
{{
{''.join(calls)}}}
"""


def _scratch_ref(model: QuantizedModel, name: str, tensor: str) -> str:
    """A tensor's C expression inside the generic step: locals live in the static scratch struct."""
    expression = c_name(model, tensor)
    return expression if tensor in ("x", "logits") or expression.startswith("state->") else f"{name}_scratch.{expression}"
