"""The fused int8 step: a GRU layer as two mat-vecs and three elementwise passes (edgegru_gru_int8.h).

What the generator knows at build time and a general library does not, used here:
- the gates' weights are stacked ([W_ir; W_iz; W_in] and [W_hr; W_hz; W_hn]) so that each input
  vector is read by one mat-vec, and laid out per kernel path (row-major, the MVE path's 4-row blocks,
  `block_layout`, or the DSP path's row pairs, `pair_layout`), all under `#if` in the same source: the
  compiler keeps the one its kernel reads;
- the input zero point is folded into the bias (`model_facts.folded_bias`);
- every ADD/SUB input rescale is a 256-entry table computed with the golden model's own
  `multiply_by_quantized_multiplier` (`add_input_tables`): bit-exact by construction;
- every requantization, output zero point included, is one 64-bit multiply-add (`requant_fields`),
  which needs a right shift in [1, 22] and accumulators below 2^30; `fused_int8_refusal` says when a
  model does not meet that (the generic per-operator kernels take it then).
"""

from __future__ import annotations

import numpy as np

from edgegru.fixedpoint import multiply_by_quantized_multiplier
from edgegru.integer_ops import AddParams, MulParams
from edgegru.quantize import QuantizedModel
from firmware_sim.codegen.c_text import c_array, c_int, c_struct
from firmware_sim.codegen.model_facts import c_name, folded_bias, reset_function

PAIR_ODD_BOUND = 2**22  # 128 * sum|W[odd row]| below this: 512 * dot_odd fits int32 (edgegru_gru_int8.h)
MAX_ACCUMULATOR_BITS = 31  # |acc| < 2^30: the requantization doubles it
MAX_RIGHT_SHIFT = 22  # 129 * 2^e + 2^30 < 2^31: the requantization's high word fits int32


def fused_int8_refusal(model: QuantizedModel) -> str | None:
    """Why the fused kernels cannot compute `model` exactly, or None when they can."""
    spec = model.scheme_spec
    if spec.activation != "int8" or not spec.lookup_activations or spec.q15_fully_connected:
        return f"scheme {spec.name} (the fused kernels are int8, with table activations and Q31 requantization)"
    bits = model.meta.get("max_accumulator_bits")
    if bits is None or bits > MAX_ACCUMULATOR_BITS:
        return f"accumulators of {bits} bits (the fused requantization needs at most {MAX_ACCUMULATOR_BITS})"
    for op in model.ops:
        p = model.op_params[op.output]
        if op.kind in ("fully_connected", "add", "sub", "mul"):
            shifts = -np.asarray(p.output_shift)
            if shifts.min() < 1 or shifts.max() > MAX_RIGHT_SHIFT:
                return (f"{op.output}: a requantization shifts right by {shifts.min()} to {shifts.max()} "
                        f"(the fused requantization needs 1 to {MAX_RIGHT_SHIFT})")
        if op.kind == "fully_connected":
            odd_rows = np.abs(model.weights[op.weight].astype(np.int64))[1::2].sum(axis=1)
            if 128 * odd_rows.max(initial=0) >= PAIR_ODD_BOUND:
                return f"{op.output}: rows too long for the DSP path's row pairs"
    return None


def pair_layout(weights: np.ndarray) -> np.ndarray:
    """int8 [rows, cols] -> the DSP path's row pairs as int32 words (edgegru_gru_int8.h): halfwords
    h[c] = 256 W[2k+1][c] + W[2k][c] (an odd last row paired with zeros, cols padded to even with
    zeros); quads while four rows remain, then single pairs; per block and x word ((c, c+2),
    (c+1, c+3) per group of 4 columns, then (c, c+1)), one word per pair: low half at the first column."""
    w = weights.astype(np.int64)
    rows, cols = w.shape
    w = np.pad(w, ((0, rows % 2), (0, cols % 2)))
    halves = (256 * w[1::2] + w[0::2]) & 0xFFFF  # [pairs, cols'], |value| <= 32639 as uint16
    grouped = cols - cols % 4
    x_words = [(c + i, c + i + 2) for c in range(0, grouped, 4) for i in (0, 1)]
    x_words += [(c, c + 1) for c in range(grouped, cols, 2)]
    blocks, pair = [], 0
    while 2 * pair + 4 <= rows:
        blocks.append(halves[pair:pair + 2])
        pair += 2
    blocks += [halves[k:k + 1] for k in range(pair, len(halves))]
    words = [h[low] | (h[high] << 16) for block in blocks for low, high in x_words for h in block]
    return np.array(words, dtype=np.uint64).astype(np.uint32).view(np.int32)


def block_layout(weights: np.ndarray) -> np.ndarray:
    """int8 [rows, cols] -> the MVE path's bytes (edgegru_gru_int8.h): per block of 4 rows and per chunk
    of 16 columns (the last one cols % 16 wide), the 4 rows' bytes of that chunk; then the rows % 4
    last rows row-major.  A permutation: no padding."""
    rows, cols = weights.shape
    blocked = rows - rows % 4
    chunks = [weights[r:r + 4, c:c + 16].reshape(-1) for r in range(0, blocked, 4) for c in range(0, cols, 16)]
    return np.concatenate(chunks + [weights[blocked:].reshape(-1)]).astype(np.int8)


def weight_arrays(symbol: str, weights: np.ndarray) -> str:
    """`symbol` in each kernel path's layout (DSP `pair_layout`, MVE `block_layout`, portable row-major),
    under `#if`: the compiler keeps the one its kernel reads."""
    cols = weights.shape[1]
    per_line = cols if cols <= 32 else 16
    return ("#if defined(EDGEGRU_USE_DSP)\n"
            + c_array("int32_t", symbol, pair_layout(weights), per_line=8)
            + "#elif defined(EDGEGRU_USE_MVE)\n"
            + c_array("int8_t", symbol, block_layout(weights), per_line=16)
            + "#else\n"
            + c_array("int8_t", symbol, weights, per_line=per_line)
            + "#endif\n")


def add_input_tables(p: AddParams, sign: int) -> tuple[np.ndarray, np.ndarray]:
    """int32 [256] each: input k's rescale MBQM((q - zp_k) << left_shift) for q = -128..127 (the second
    negated for SUB), exactly the golden model's ADD (integer_ops._add_or_sub); |value| < 2^27."""
    q = np.arange(-128, 128, dtype=np.int64)
    first = multiply_by_quantized_multiplier((q + p.input1_offset) << p.left_shift, p.input1_multiplier,
                                             p.input1_shift, "double")
    second = multiply_by_quantized_multiplier((q + p.input2_offset) << p.left_shift, p.input2_multiplier,
                                              p.input2_shift, "double")
    return first, sign * second


def scratch_fields(model: QuantizedModel) -> list[tuple[str, str, int, int]]:
    """(C type, field, item bytes, count) of the fused step's static scratch, int32 first (no padding
    between fields; the struct's size is their sum, rounded up to 4 by `scratch_size`)."""
    cfg = model.config
    hidden, classes = cfg["hidden"], cfg["num_classes"]
    wide = (max(cfg["input_size"], hidden) + 1) // 2
    fields = [("int32_t", "acc", 4, max(3 * hidden, classes)), ("int32_t", "wide", 4, wide),
              ("int8_t", "gx", 1, 3 * hidden), ("int8_t", "gh", 1, 3 * hidden),
              ("int8_t", "r", 1, hidden), ("int8_t", "z", 1, hidden), ("int8_t", "n", 1, hidden)]
    if cfg["variant"] == "reset_before":
        fields.append(("int8_t", "r_h", 1, hidden))
    return fields


def scratch_size(model: QuantizedModel) -> int:
    """sizeof the fused step's scratch struct: the fields' bytes rounded up to the int32 alignment."""
    return -(-sum(size * count for _, _, size, count in scratch_fields(model)) // 4) * 4


def _initializer(fields: dict) -> str:
    """`{.key = value, ...}`; dict values nest."""
    return "{" + ", ".join(f".{key} = {_initializer(value) if isinstance(value, dict) else value}"
                           for key, value in fields.items()) + "}"


def requant_fields(multiplier, shift, zero_point) -> dict[str, np.ndarray]:
    """The fused requantization's parameters (edgegru_gru_int8.h), elementwise: multiplier (Q31),
    nudge = 2^(e-1) + zp 2^e and exponent e = -shift, the right shift."""
    exponent = -np.asarray(shift, dtype=np.int64)
    nudge = (np.int64(1) << (exponent - 1)) + np.asarray(zero_point, dtype=np.int64) * (np.int64(1) << exponent)
    return {"multiplier": np.asarray(multiplier, dtype=np.int64), "nudge": nudge, "exponent": exponent}


def _requant(multiplier: int, shift: int, zero_point: int) -> dict:
    return {key: c_int(int(value)) for key, value in requant_fields(multiplier, shift, zero_point).items()}


class _Emitter:
    """Collects the constants of one model's fused step; each method returns the C expression to use."""

    def __init__(self, model: QuantizedModel, name: str):
        self.model, self.name = model, name
        self.constants: list[str] = []

    def symbol(self, tensor: str) -> str:
        return f"{self.name}_{tensor.replace('.', '_')}"

    def op(self, output: str):
        return next(op for op in self.model.ops if op.output == output)

    def fc(self, label: str, fc_outputs: list[str]) -> str:
        """These FULLY_CONNECTED ops stacked into one edgegru_fc_int8_t: weights, folded biases and the
        per-row requantization (each op's own output zero point)."""
        ops = [self.op(output) for output in fc_outputs]
        params = [self.model.op_params[output] for output in fc_outputs]
        weights = np.vstack([self.model.weights[op.weight] for op in ops])
        bias = np.concatenate([folded_bias(self.model, op) for op in ops])
        rows, cols = weights.shape
        requant = requant_fields(np.concatenate([p.output_multiplier for p in params]),
                                 np.concatenate([p.output_shift for p in params]),
                                 np.concatenate([np.full(len(p.output_multiplier), p.output_offset) for p in params]))
        symbol = self.symbol(label)
        self.constants.append(
            f"/* {', '.join(op.weight for op in ops)} stacked: int8 [{rows}][{cols}], symmetric per output channel */\n"
            + weight_arrays(f"{symbol}_weights", weights)
            + "/* int32 at scale s_in * s_w[r], the input zero point folded in */\n"
            + c_array("int32_t", f"{symbol}_bias", bias, per_line=8)
            + f"/* per row: multiplier, nudge, exponent of the requantization to int8, output zero points "
              f"{', '.join(str(p.output_offset) for p in params)} */\n"
            + c_array("int32_t", f"{symbol}_requant",
                      np.stack([requant[key] for key in ("multiplier", "nudge", "exponent")], axis=1), per_line=3))
        return self.struct("edgegru_fc_int8_t", label, {
            **{key: f"{symbol}_{key}" for key in ("weights", "bias", "requant")}, "rows": c_int(rows), "cols": c_int(cols)})

    def add(self, output: str) -> str:
        op = self.op(output)
        p: AddParams = self.model.op_params[output]
        first, second = add_input_tables(p, -1 if op.kind == "sub" else 1)
        symbol = self.symbol(output)
        self.constants.append(
            f"/* {output} = {op.kind.upper()}({', '.join(op.inputs)}): input rescales at q + 128 */\n"
            + c_array("int32_t", f"{symbol}_table1", first, per_line=8)
            + c_array("int32_t", f"{symbol}_table2", second, per_line=8))
        return {"table1": f"&{symbol}_table1[128]", "table2": f"&{symbol}_table2[128]",
                "output": _requant(p.output_multiplier, p.output_shift, p.output_offset)}

    def mul(self, output: str) -> str:
        p: MulParams = self.model.op_params[output]
        return {"offset1": c_int(p.input1_offset), "offset2": c_int(p.input2_offset),
                "output": _requant(p.output_multiplier, p.output_shift, p.output_offset)}

    def activation(self, output: str) -> str:
        symbol = self.symbol(output)
        self.constants.append(f"/* {output} = {self.op(output).kind.upper()}: int8 table at q + 128 */\n"
                              + c_array("int8_t", f"{symbol}_table", self.model.op_params[output].table))
        return f"&{symbol}_table[128]"

    def struct(self, ctype: str, label: str, fields: dict) -> str:
        symbol = self.symbol(label)
        self.constants.append(c_struct(ctype, symbol, {
            key: _initializer(value) if isinstance(value, dict) else value for key, value in fields.items()}))
        return f"&{symbol}"


def fused_int8_source(model: QuantizedModel, name: str) -> str:
    """`<name>.c` for the fused int8 kernels (module doc); `fused_int8_refusal(model)` must be None."""
    cfg = model.config
    hidden, upper = cfg["hidden"], name.upper()
    emit = _Emitter(model, name)
    calls = []
    layer_input = "features"
    for layer in range(cfg["layers"]):
        p = f"l{layer}."
        state = c_name(model, p + "h")
        fc_x = emit.fc(p + "x", [p + "xr", p + "xz", p + "xn"])
        fc_h = emit.fc(p + "h", [p + "hr", p + "hz"] + ([p + "hn"] if cfg["variant"] == "reset_after" else []))
        gates = {gate: emit.struct("edgegru_gate_int8_t", p + gate, {
            "add": emit.add(p + gate + "_pre"), "activation": emit.activation(p + gate)}) for gate in ("r", "z")}
        calls += [f"    /* layer {layer}: gx = [xr; xz; xn], gh = [hr; hz(; hn)] */\n",
                  f"    edgegru_fc_int8({fc_x}, {layer_input}, S.gx, S.acc, S.wide);\n",
                  f"    edgegru_fc_int8({fc_h}, {state}, S.gh, S.acc, S.wide);\n",
                  f"    edgegru_gate_int8({gates['r']}, S.gx, S.gh, S.r, {hidden});\n",
                  f"    edgegru_gate_int8({gates['z']}, S.gx + {hidden}, S.gh + {hidden}, S.z, {hidden});\n"]
        if cfg["variant"] == "reset_after":
            candidate = emit.struct("edgegru_candidate_int8_t", p + "n", {
                "reset": emit.mul(p + "r_hn"), "add": emit.add(p + "n_pre"), "activation": emit.activation(p + "n")})
            calls.append(f"    edgegru_candidate_int8({candidate}, S.gx + {2 * hidden}, S.gh + {2 * hidden}, "
                         f"S.r, S.n, {hidden});\n")
        else:
            reset = emit.struct("edgegru_mul_int8_t", p + "r_h", emit.mul(p + "r_h"))
            fc_hn = emit.fc(p + "hn", [p + "hn"])
            candidate = emit.struct("edgegru_gate_int8_t", p + "n", {
                "add": emit.add(p + "n_pre"), "activation": emit.activation(p + "n")})
            calls += [f"    edgegru_mul_vector_int8({reset}, S.r, {state}, S.r_h, {hidden});\n",
                      f"    edgegru_fc_int8({fc_hn}, S.r_h, S.gh + {2 * hidden}, S.acc, S.wide);\n",
                      f"    edgegru_gate_int8({candidate}, S.gx + {2 * hidden}, S.gh + {2 * hidden}, S.n, {hidden});\n"]
        update = emit.struct("edgegru_update_int8_t", p + "update", {
            "sub": emit.add(p + "h_minus_n"), "mul": emit.mul(p + "z_h_minus_n"), "add": emit.add(p + "h_new")})
        calls.append(f"    edgegru_update_int8({update}, S.z, S.n, {state}, {hidden});\n")
        layer_input = state
    head = emit.fc("head", ["logits"])
    calls += ["    /* head */\n", f"    edgegru_fc_int8({head}, {layer_input}, logits, S.acc, S.wide);\n"]
    fields = "".join(f"    {ctype} {field}[{count}];\n" for ctype, field, _, count in scratch_fields(model))
    return f"""/* {name}: generated by firmware_sim/codegen (fused int8 kernels); do not edit.  See {name}.h. */
#include "{name}.h"

#include "edgegru_gru_int8.h"
#include "edgegru_target.h"

{chr(10).join(emit.constants)}
/* The step's intermediates: mat-vec accumulators, the stacked int8 FC outputs and the int8 gates. */
static struct {{
{fields}}} {name}_scratch;
#define S {name}_scratch
typedef char {name}_scratch_bytes_check[sizeof(S) == {upper}_SCRATCH_BYTES ? 1 : -1];

{reset_function(model, name)}
void {name}_step({name}_state_t *state, const int8_t *features, int8_t *logits)
{{
{''.join(calls)}}}
#undef S
"""

