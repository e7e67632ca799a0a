"""C99 source for one quantized GRU step: `generate_c(model, name)` -> {"<name>.h", "<name>.c"}.

The generated model is glue: it holds the integers of the `QuantizedModel` (weights, biases, the op
parameters of `integer_ops.prepare_*`) as `static const` data and calls the kernels of
`firmware_sim/c/edgegru_kernels.c` once per op of `step_graph.step_ops`, in order.  It computes with
the golden model's `double` rounding profile and is bit-exact with `golden.golden_step`.

The public header gives the caller:
- `<name>_state_t`: the GRU state, owned by the caller (one `lK_h[H]` array per layer, the
  quantized `lK.h`; `<name>_step` overwrites it with `lK.h_new`);
- `<name>_reset(state)`: every state element set to its zero point (the real value 0);
- `<name>_step(state, features, logits)`: one time step; features are `x` quantized (int8 or int16,
  `<NAME>_INPUT_SCALE`, `<NAME>_INPUT_ZERO_POINT`, after the model's normalization), logits come out
  with `<NAME>_OUTPUT_SCALE` / `<NAME>_OUTPUT_ZERO_POINT`;
- `<name>_act_t`: the activation type (int8_t or int16_t), and the sizes as #defines.

Intermediates live on the stack of `<name>_step` (a few bytes per hidden unit); no heap, no float.
For the int8 scheme the input zero point is folded into the bias, bias'[c] = bias[c] - zp_in Σ_i W[c, i]:
bias' is the accumulator for the all-zero input, so the quantizer's accumulator bound holds for it and
for every partial sum of the kernel's dot product.  The same model always gives byte-identical sources.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgegru.errors import EdgeGRUError
from edgegru.quantize import QuantizedModel

KERNEL_DIR = Path(__file__).parent / "c"
KERNEL_SOURCES = ("edgegru_kernels.h", "edgegru_kernels.c")
MAX_ACCUMULATOR_BITS = 32  # the kernels accumulate in int32 for both schemes
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

KERNELS = {
    "int8": {"fully_connected": "edgegru_fully_connected_int8", "add": "edgegru_add_int8",
             "sub": "edgegru_sub_int8", "mul": "edgegru_mul_int8"},
    "int16x8": {"fully_connected": "edgegru_fully_connected_int16x8", "add": "edgegru_add_int16",
                "sub": "edgegru_sub_int16", "mul": "edgegru_mul_int16",
                "logistic": "edgegru_logistic_int16", "tanh": "edgegru_tanh_int16"},
}
C_TYPES = {"int8": "int8_t", "int16": "int16_t"}


def kernel_sources() -> dict[str, str]:
    """The kernel library's files {filename: text}, to be compiled with the generated model."""
    return {filename: (KERNEL_DIR / filename).read_text() for filename in KERNEL_SOURCES}


def _c_int(value: int) -> str:
    value = int(value)
    if value == INT32_MIN:
        return "(-2147483647 - 1)"
    return str(value)


def _c_float(value: float) -> str:
    return f"{float(np.float32(value))!r}f"


def _array(ctype: str, symbol: str, values, per_line: int = 16) -> str:
    values = [_c_int(v) for v in np.asarray(values).reshape(-1)]
    lines = [", ".join(values[i:i + per_line]) for i in range(0, len(values), per_line)]
    return f"static const {ctype} {symbol}[{len(values)}] = {{\n    " + ",\n    ".join(lines) + ",\n};\n"


def _struct(ctype: str, symbol: str, fields: dict) -> str:
    body = "".join(f"    .{key} = {value},\n" for key, value in fields.items())
    return f"static const {ctype} {symbol} = {{\n{body}}};\n"


def _check(model: QuantizedModel, name: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise EdgeGRUError(f"model name {name!r} is not a C identifier; use letters, digits and '_'")
    if model.scheme not in KERNELS:
        raise EdgeGRUError(f"no C kernels for scheme {model.scheme!r}; choose int8 or int16x8")
    bits = model.meta.get("max_accumulator_bits")
    if bits is None or bits > MAX_ACCUMULATOR_BITS:
        raise EdgeGRUError(
            f"the model's FULLY_CONNECTED accumulators need {bits} bits, the C kernels accumulate in "
            f"{MAX_ACCUMULATOR_BITS}; re-quantize a model with smaller weights (weight decay) or inputs")
    for op in model.ops:
        p = model.op_params[op.output]
        if op.kind == "fully_connected":
            shifts = np.asarray(p.output_shift)
            low, high = (-31, 30) if model.scheme == "int8" else (-31, 14)
            if shifts.min() < low or shifts.max() > high:
                raise EdgeGRUError(f"{op.output}: requantization shift outside [{low}, {high}]; the C kernels "
                                   f"cannot represent it (extreme scale ratio between input and output)")
        if model.scheme == "int16x8" and op.kind in ("logistic", "tanh") and p.input_multiplier > 32767:
            raise EdgeGRUError(f"{op.output}: int16 {op.kind} input scale too large for the int32 kernel "
                               f"(multiplier {p.input_multiplier} > 32767)")
    for h_in, h_out in model.states:
        producer = next(i for i, op in enumerate(model.ops) if op.output == h_out)
        if any(h_in in op.inputs for op in model.ops[producer + 1:]):
            raise EdgeGRUError(f"{h_out} is written in place over {h_in}, which a later op reads")


def _folded_bias(model: QuantizedModel, op) -> np.ndarray:
    """int32 bias the kernel starts its accumulator from (int8: input zero point folded in)."""
    weights = model.weights[op.weight].astype(np.int64)
    bias = model.biases[op.weight].astype(np.int64)
    zero_point = int(model.tensors[op.inputs[0]].zero_point)
    folded = bias - zero_point * weights.sum(axis=1)
    if folded.min(initial=0) < INT32_MIN or folded.max(initial=0) > INT32_MAX:
        raise EdgeGRUError(f"{op.output}: bias does not fit int32 after folding the input zero point")
    return folded


def generate_c(model: QuantizedModel, name: str) -> dict[str, str]:
    """{`<name>.h`, `<name>.c`}: the model's one-step function in C99 over edgegru_kernels (see module doc)."""
    _check(model, name)
    cfg = model.config
    upper = name.upper()
    act = C_TYPES[model.tensors["x"].dtype]
    kernels = KERNELS[model.scheme]
    x_q, logits_q = model.tensors["x"], model.tensors["logits"]

    widths = {"x": cfg["input_size"], **{h: cfg["hidden"] for pair in model.states for h in pair}}
    for op in model.ops:
        widths[op.output] = len(model.weights[op.weight]) if op.kind == "fully_connected" else widths[op.inputs[0]]

    def c_name(tensor: str) -> str:
        if tensor == "x":
            return "features"
        if tensor == "logits":
            return "logits"
        for h_in, h_out in model.states:
            if tensor in (h_in, h_out):
                return "state->" + h_in.replace(".", "_")
        return tensor.replace(".", "_")

    def describe(tensor: str) -> str:
        q = model.tensors[tensor]
        return f"{q.dtype}[{widths[tensor]}], scale {float(q.scale)!r}, zp {int(q.zero_point)}"

    # --- header ----------------------------------------------------------------------------------
    state_fields = "".join(f"    {act} {h_in.replace('.', '_')}[{upper}_HIDDEN]; /* {h_in}: {describe(h_in)} */\n"
                           for h_in, _ in model.states)
    header = f"""/* {name}: EdgeGRU GRU step, scheme {model.scheme}, variant {cfg['variant']}, {cfg['layers']} layer(s),
 * hidden {cfg['hidden']}, {cfg['input_size']} input features, {cfg['num_classes']} classes.
 * Generated by firmware_sim/codegen.py from the quantized artifact; do not edit.
 * Compile with firmware_sim/c/edgegru_kernels.c.  Real value = scale * (q - zero point).
 */
#ifndef {upper}_H
#define {upper}_H

#include <stdint.h>

#define {upper}_INPUT_SIZE {cfg['input_size']}
#define {upper}_HIDDEN {cfg['hidden']}
#define {upper}_LAYERS {cfg['layers']}
#define {upper}_NUM_CLASSES {cfg['num_classes']}
#define {upper}_ACTIVATION_BITS {8 if act == 'int8_t' else 16}
#define {upper}_INPUT_SCALE {_c_float(x_q.scale)}
#define {upper}_INPUT_ZERO_POINT {int(x_q.zero_point)}
#define {upper}_OUTPUT_SCALE {_c_float(logits_q.scale)}
#define {upper}_OUTPUT_ZERO_POINT {int(logits_q.zero_point)}

/* Activation type of features, logits and state. */
typedef {act} {name}_act_t;

/* The recurrent state; owned by the caller, set by {name}_reset, updated by every {name}_step. */
typedef struct {{
{state_fields}}} {name}_state_t;

/* Every state element to its zero point (real 0): call before each new sequence. */
void {name}_reset({name}_state_t *state);

/* One time step: features [{upper}_INPUT_SIZE] quantized with the input scale and zero point ->
 * logits [{upper}_NUM_CLASSES]; the state is updated in place. */
void {name}_step({name}_state_t *state, const {act} *features, {act} *logits);

#endif
"""

    # --- constants -------------------------------------------------------------------------------
    constants, calls = [], []
    for op in model.ops:
        p = model.op_params[op.output]
        symbol = f"{name}_{op.output.replace('.', '_')}"
        ins = ", ".join(c_name(t) for t in op.inputs)
        out = c_name(op.output)
        n = widths[op.output]
        operands = ", ".join(op.inputs + ((op.weight,) if op.weight else ()))
        comment = f"/* {op.output} = {op.kind.upper()}({operands}): {describe(op.output)} */\n"
        if op.kind == "fully_connected":
            w = model.weights[op.weight]
            rows, cols = w.shape
            constants.append(
                comment
                + f"/* {op.weight}: int8 [{rows}][{cols}] row-major, symmetric per output channel */\n"
                + _array("int8_t", f"{symbol}_weights", w, per_line=cols if cols <= 32 else 16)
                + ("/* int32 at scale s_in * s_w[c]; the input zero point folded in */\n"
                   if model.scheme == "int8" else "/* at scale s_in * s_w[c]; |bias| < 2^31 by the accumulator bound */\n")
                + _array("int32_t", f"{symbol}_bias", _folded_bias(model, op), per_line=8)
                + _array("int32_t", f"{symbol}_multiplier", p.output_multiplier, per_line=8)
                + _array("int32_t", f"{symbol}_shift", p.output_shift)
                + _struct("edgegru_fc_params_t", symbol, {
                    "weights": f"{symbol}_weights", "bias": f"{symbol}_bias",
                    "multiplier": f"{symbol}_multiplier", "shift": f"{symbol}_shift",
                    "output_offset": _c_int(p.output_offset), "rows": rows, "cols": cols}))
            calls.append(f"    {kernels['fully_connected']}(&{symbol}, {ins}, {out});\n")
        elif op.kind in ("add", "sub"):
            constants.append(comment + _struct("edgegru_add_params_t", symbol, {
                key: _c_int(getattr(p, key)) for key in (
                    "input1_offset", "input2_offset", "output_offset", "left_shift", "input1_multiplier",
                    "input1_shift", "input2_multiplier", "input2_shift", "output_multiplier", "output_shift")}))
            calls.append(f"    {kernels[op.kind]}(&{symbol}, {ins}, {out}, {n});\n")
        elif op.kind == "mul":
            constants.append(comment + _struct("edgegru_mul_params_t", symbol, {
                key: _c_int(getattr(p, key)) for key in (
                    "input1_offset", "input2_offset", "output_offset", "output_multiplier", "output_shift")}))
            calls.append(f"    {kernels['mul']}(&{symbol}, {ins}, {out}, {n});\n")
        elif model.scheme == "int8":  # logistic, tanh: the table built at quantization time
            constants.append(comment + "/* indexed by q + 128 */\n" + _array("int8_t", f"{symbol}_table", p.table))
            calls.append(f"    edgegru_lookup_int8({symbol}_table, {ins}, {out}, {n});\n")
        else:
            constants.append(comment + _struct("edgegru_int16_activation_params_t", symbol, {
                "input_multiplier": _c_int(p.input_multiplier), "input_left_shift": _c_int(p.input_left_shift)}))
            calls.append(f"    {kernels[op.kind]}(&{symbol}, {ins}, {out}, {n});\n")

    locals_ = [op.output for op in model.ops if op.output != "logits" and c_name(op.output) == op.output.replace(".", "_")]
    declarations = "".join(f"    {act} {c_name(t)}[{widths[t]}];\n" for t in locals_)
    resets = "".join(
        f"    for (i = 0; i < {upper}_HIDDEN; ++i) {{\n        state->{h_in.replace('.', '_')}[i] = "
        f"{int(model.tensors[h_in].zero_point)};\n    }}\n" for h_in, _ in model.states)
    source = f"""/* {name}: generated by firmware_sim/codegen.py; do not edit.  See {name}.h. */
#include "{name}.h"

#include "edgegru_kernels.h"

{chr(10).join(constants)}
void {name}_reset({name}_state_t *state)
{{
    int32_t i;
{resets}}}

void {name}_step({name}_state_t *state, const {act} *features, {act} *logits)
{{
    /* intermediates of the step graph (step_graph.step_ops); lK.h_new is written over lK.h */
{declarations}
{''.join(calls)}}}
"""
    return {f"{name}.h": header, f"{name}.c": source}
