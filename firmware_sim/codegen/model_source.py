"""C99 source for one quantized GRU step: `generate_c(model, name)` -> {"<name>.h", "<name>.c"}.

The generated model is glue over the kernel library (`kernel_library`, `c/`): it holds the integers of
the `QuantizedModel` (weights, biases, the op parameters of `integer_ops.prepare_*`) as `static const`
data.  int8 models take the fused kernels (`fused_int8_step`: stacked gate mat-vecs and three elementwise
passes per layer); a model those cannot compute exactly, and every int16x8 model, calls the generic
kernels once per op of `step_graph.step_ops`, in order (`generic_step`).  Both compute with the golden model's
`double` rounding profile and are bit-exact with `golden.golden_step`.

The public header gives the caller:
- `<name>_state_t`: the GRU state, owned by the caller (one `lK_h[H]` array per layer, the
  quantized `lK.h`; `<name>_step` overwrites it with `lK.h_new`);
- `<name>_reset(state)`: every state element set to its zero point (the real value 0);
- `<name>_step(state, features, logits)`: one time step; features are `x` quantized (int8 or int16,
  `<NAME>_INPUT_SCALE`, `<NAME>_INPUT_ZERO_POINT`, after the model's normalization), logits come out
  with `<NAME>_OUTPUT_SCALE` / `<NAME>_OUTPUT_ZERO_POINT`;
- `<name>_act_t`: the activation type (int8_t or int16_t), the sizes, and the RAM it needs:
  `<NAME>_STATE_BYTES` (the caller's state) and `<NAME>_SCRATCH_BYTES` (the step's one static
  scratch buffer; the build fails if either differs from the C types' sizes).

No heap, no float.  For the int8 scheme the input zero point is folded into the bias,
bias'[c] = bias[c] - zp_in sum_i W[c, i]: bias' is the accumulator for the all-zero input, so the
quantizer's accumulator bound holds for it and for every partial sum of the kernel's dot product.
The same model always gives byte-identical sources.
"""

from __future__ import annotations

import re

import numpy as np

from edgegru.errors import EdgeGRUError
from edgegru.quantize import QuantizedModel
from firmware_sim.codegen.c_text import c_float
from firmware_sim.codegen.fused_int8_step import fused_int8_refusal, fused_int8_source, scratch_size
from firmware_sim.codegen.generic_step import c_kernels, generic_scratch_bytes, generic_step_source
from firmware_sim.codegen.model_facts import activation_c_type, describe, state_bytes

MAX_ACCUMULATOR_BITS = 32  # the kernels accumulate in int32 for both schemes


def _check(model: QuantizedModel, name: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise EdgeGRUError(f"model name {name!r} is not a C identifier; use letters, digits and '_'")
    kernels = c_kernels(model)  # EdgeGRUError for a scheme the C kernels do not compute
    bits = model.meta.get("max_accumulator_bits")
    if bits is None or bits > MAX_ACCUMULATOR_BITS:
        raise EdgeGRUError(
            f"the model's FULLY_CONNECTED accumulators need {bits} bits, the C kernels accumulate in "
            f"{MAX_ACCUMULATOR_BITS}; re-quantize a model with smaller weights (weight decay) or inputs")
    for op in model.ops:
        p = model.op_params[op.output]
        if op.kind == "fully_connected":
            shifts = np.asarray(p.output_shift)
            low, high = (-31, 14) if kernels.q15_fully_connected else (-31, 30)
            if shifts.min() < low or shifts.max() > high:
                raise EdgeGRUError(f"{op.output}: requantization shift outside [{low}, {high}]; the C kernels "
                                   f"cannot represent it (extreme scale ratio between input and output)")
            if kernels.q15_fully_connected:
                q15 = p.output_multiplier_q15
                if q15 is None or np.shape(q15) != np.shape(p.output_multiplier):
                    raise EdgeGRUError(f"{op.output}: the artifact has no Q15 multiplier per output channel "
                                       f"(output_multiplier_q15); re-quantize the model")
                if np.min(q15) < 0 or np.max(q15) > 32767:
                    raise EdgeGRUError(f"{op.output}: Q15 multiplier outside [0, 32767]")
        if kernels.logistic is not None and op.kind in ("logistic", "tanh"):
            if not 1 <= p.input_multiplier <= 32767 or not 0 <= p.input_left_shift <= 31:
                raise EdgeGRUError(f"{op.output}: int16 {op.kind} input rescaling (multiplier {p.input_multiplier}, "
                                   f"left shift {p.input_left_shift}) outside the int32 kernel's [1, 32767] and "
                                   f"[0, 31] (input scale too large, or not the effective values)")
    for h_in, h_out in model.states:
        producer = next(i for i, op in enumerate(model.ops) if op.output == h_out)
        if any(h_in in op.inputs for op in model.ops[producer + 1:]):
            raise EdgeGRUError(f"{h_out} is written in place over {h_in}, which a later op reads")


def generate_c(model: QuantizedModel, name: str) -> dict[str, str]:
    """{`<name>.h`, `<name>.c`}: the model's one-step function in C99 (see module doc).  int8 models take
    the fused kernels of edgegru_gru_int8.h when `fused_int8_step.fused_int8_refusal` finds nothing against
    it; otherwise (and for int16x8) the step calls the generic per-operator kernels."""
    _check(model, name)
    fused = fused_int8_refusal(model) is None
    body = fused_int8_source(model, name) if fused else generic_step_source(model, name)
    return {f"{name}.h": _header(model, name, scratch_bytes(model, fused)), f"{name}.c": body}


def _header(model: QuantizedModel, name: str, scratch: int) -> str:
    cfg = model.config
    upper = name.upper()
    act = activation_c_type(model)
    x_q, logits_q = model.tensors["x"], model.tensors["logits"]
    state_fields = "".join(f"    {act} {h_in.replace('.', '_')}[{upper}_HIDDEN]; /* {h_in}: {describe(model, h_in)} */\n"
                           for h_in, _ in model.states)
    return f"""/* {name}: EdgeGRU GRU step, scheme {model.scheme}, variant {cfg['variant']}, {cfg['layers']} layer(s),
 * hidden {cfg['hidden']}, {cfg['input_size']} input features, {cfg['num_classes']} classes.
 * Generated by firmware_sim/codegen from the quantized artifact; do not edit.
 * Compile with the kernels of firmware_sim/codegen/c.  Real value = scale * (q - zero point).
 */
#ifndef {upper}_H
#define {upper}_H

#include <stdint.h>

#define {upper}_INPUT_SIZE {cfg['input_size']}
#define {upper}_HIDDEN {cfg['hidden']}
#define {upper}_LAYERS {cfg['layers']}
#define {upper}_NUM_CLASSES {cfg['num_classes']}
#define {upper}_ACTIVATION_BITS {8 if act == 'int8_t' else 16}
#define {upper}_INPUT_SCALE {c_float(x_q.scale)}
#define {upper}_INPUT_ZERO_POINT {int(x_q.zero_point)}
#define {upper}_OUTPUT_SCALE {c_float(logits_q.scale)}
#define {upper}_OUTPUT_ZERO_POINT {int(logits_q.zero_point)}
/* RAM: the caller's state, and the step's scratch (a static buffer inside {name}.c) */
#define {upper}_STATE_BYTES {state_bytes(model)}
#define {upper}_SCRATCH_BYTES {scratch}

/* Activation type of features, logits and state. */
typedef {act} {name}_act_t;

/* The recurrent state; owned by the caller, set by {name}_reset, updated by every {name}_step. */
typedef struct {{
{state_fields}}} {name}_state_t;

/* Every state element to its zero point (real 0): call before each new sequence. */
void {name}_reset({name}_state_t *state);

/* One time step: features [{upper}_INPUT_SIZE] quantized with the input scale and zero point ->
 * logits [{upper}_NUM_CLASSES]; the state is updated in place.  Not reentrant: the step's
 * intermediates live in one static scratch buffer. */
void {name}_step({name}_state_t *state, const {act} *features, {act} *logits);

#endif
"""


def scratch_bytes(model: QuantizedModel, fused: bool) -> int:
    """Bytes of the step's static scratch: the fused int8 step's accumulators and gates
    (`fused_int8_step.scratch_size`), or every intermediate tensor of the generic step."""
    return scratch_size(model) if fused else generic_scratch_bytes(model)
