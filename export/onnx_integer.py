"""The quantized GRU step as an integer-only ONNX model that reproduces the golden model exactly.

Why this form: onnxruntime's quantized kernels (QLinearMatMul, QLinearAdd, QDQ fusions) requantize in
float32 with round-half-to-even, which no TFLite-spec integer runtime does, and its quantizer refuses
GRUs.  So each FULLY_CONNECTED is an integer kernel (`MatMulInteger`, int8 x int8 -> int32, with the
input zero point; int16x8 uses an int64 `MatMul`), and the TFLite spec's fixed-point requantization
is written out in int64 elementwise ops: saturating rounding doubling high multiply as
floor((x·M + 2^30) / 2^31), rounding divide by 2^e as floor((v + 2^(e-1) - [v < 0]) / 2^e), with floor
division as Div(a - Mod(a, d), d) (exact: both runtimes divide int64 exactly).  int8 LOGISTIC/TANH are
`Gather` from the golden model's own 256-entry tables; int16 ones interpolate the same sigmoid table.
The result is bit-exact with the golden model's `double` rounding in onnxruntime and in
`onnx.reference`.  Inputs `x`, `lK.h`; outputs `lK.h_new`, `logits`; batch is dynamic.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgegru.integer_ops import SIGMOID_TABLE_UINT16
from edgegru.quantize import QuantizedModel

OPSET = 17
ONNX_TYPES = {"int8": TensorProto.INT8, "int16": TensorProto.INT16}


class _Graph:
    """Accumulates nodes and constants with unique names."""

    def __init__(self):
        self.nodes, self.initializers, self._count = [], [], 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value, dtype=np.int64, hint="c") -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attributes) -> str:
        output = output or self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    # int64 arithmetic ------------------------------------------------------------------------
    def i64(self, name: str) -> str:
        return self.node("Cast", [name], to=TensorProto.INT64)

    def add(self, a, value) -> str:
        return self.node("Add", [a, value if isinstance(value, str) else self.const(value)])

    def mul(self, a, value) -> str:
        return self.node("Mul", [a, value if isinstance(value, str) else self.const(value)])

    def floor_div_pot(self, a: str, exponent) -> str:
        """floor(a / 2^exponent), exponent per element or per channel (exact int64)."""
        divisor = self.const(np.left_shift(np.int64(1), np.asarray(exponent, dtype=np.int64)))
        return self.node("Div", [self.node("Sub", [a, self.node("Mod", [a, divisor], fmod=0)]), divisor])

    def requantize(self, x: str, multiplier, shift) -> str:
        """TFLite double rounding: SRDHM(x << max(shift, 0), M) then rounding divide by 2^max(-shift, 0)."""
        multiplier, shift = np.asarray(multiplier, np.int64), np.asarray(shift, np.int64)
        left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
        if left.any():
            x = self.mul(x, np.left_shift(np.int64(1), left))
        high = self.floor_div_pot(self.add(self.mul(x, multiplier), 1 << 30), 31)
        negative = self.mul(self.node("Cast", [self.node("Less", [high, self.const(0)])], to=TensorProto.INT64),
                            (right > 0).astype(np.int64))
        half = np.where(right > 0, np.left_shift(np.int64(1), np.maximum(right - 1, 0)), 0)
        return self.floor_div_pot(self.node("Sub", [self.add(high, half), negative]), right)

    def saturate(self, x: str, dtype: str, output: str) -> str:
        info = np.iinfo(dtype)
        clipped = self.node("Clip", [x, self.const(info.min), self.const(info.max)])
        return self.node("Cast", [clipped], output, to=ONNX_TYPES[dtype])


def _fully_connected(g: _Graph, model: QuantizedModel, op, x: str) -> str:
    p = model.op_params[op.output]
    weight = model.weights[op.weight]
    if model.scheme_spec.q15_fully_connected:  # 16x8: int16 input, the prepared Q15 multiplier
        product = g.node("MatMul", [g.i64(x), g.i64(g.const(weight.T, np.int8, "W"))])  # stored int8, widened
        accumulator = g.add(product, model.biases[op.weight].astype(np.int64))
        total = 15 - p.output_shift
        scaled = g.floor_div_pot(g.add(g.mul(accumulator, p.output_multiplier_q15),
                                       np.left_shift(np.int64(1), total - 1)), total)
    else:  # int8 input and weights: an integer matmul with the input zero point
        zero_point = g.const(model.tensors[op.inputs[0]].zero_point, np.int8)
        product = g.node("MatMulInteger", [x, g.const(weight.T, np.int8, "W"), zero_point])
        accumulator = g.add(g.i64(product), model.biases[op.weight].astype(np.int64))
        scaled = g.requantize(accumulator, p.output_multiplier, p.output_shift)
    return g.add(scaled, p.output_offset)


def _add_or_sub(g: _Graph, p, a: str, b: str, subtract: bool) -> str:
    def scaled(x, offset, multiplier, shift):
        return g.requantize(g.mul(g.add(g.i64(x), offset), 1 << p.left_shift), multiplier, shift)

    first = scaled(a, p.input1_offset, p.input1_multiplier, p.input1_shift)
    second = scaled(b, p.input2_offset, p.input2_multiplier, p.input2_shift)
    raw = g.node("Sub" if subtract else "Add", [first, second])
    return g.add(g.requantize(raw, p.output_multiplier, p.output_shift), p.output_offset)


def _mul(g: _Graph, p, a: str, b: str) -> str:
    product = g.node("Mul", [g.add(g.i64(a), p.input1_offset), g.add(g.i64(b), p.input2_offset)])
    return g.add(g.requantize(product, p.output_multiplier, p.output_shift), p.output_offset)


def _activation_int16(g: _Graph, p, x: str, logistic: bool) -> str:
    """TFLite's int16 LOGISTIC (9 fraction bits) / TANH (8) interpolation, in int64 ops."""
    left_shift = p.input_left_shift
    rounding = (1 << (left_shift - 1)) if left_shift > 0 else 0
    value = g.floor_div_pot(g.add(g.mul(g.i64(x), p.input_multiplier), rounding), left_shift)
    bits = 9 if logistic else 8
    magnitude = g.node("Abs", [value])
    index = g.floor_div_pot(magnitude, bits)
    inside = g.node("Less", [index, g.const(255)])
    safe = g.node("Min", [index, g.const(254)])
    table = g.const(SIGMOID_TABLE_UINT16, np.int64, "sigmoid_table")
    low = g.node("Gather", [table, safe])
    high = g.node("Gather", [table, g.add(safe, 1)])
    fraction = g.node("Mod", [magnitude, g.const(1 << bits)], fmod=0)
    interpolated = g.add(g.mul(low, 1 << bits), g.node("Mul", [fraction, g.node("Sub", [high, low])]))
    saturated = g.const((0x7FFF << 10) if logistic else (0xFFFF << 8))
    result = g.node("Where", [inside, interpolated, saturated])
    positive = g.node("GreaterOrEqual", [value, g.const(0)])
    if logistic:
        up, down = g.add(result, 1 << 9), g.node("Sub", [g.const((1 << 25) + (1 << 9) - 1), result])
    else:
        up = g.add(result, -(1 << 23) + (1 << 7))
        down = g.node("Sub", [g.const((1 << 23) + (1 << 7) - 1), result])
    return g.floor_div_pot(g.node("Where", [positive, up, down]), 10 if logistic else 8)


def quantized_step_onnx(model: QuantizedModel) -> onnx.ModelProto:
    g = _Graph()
    dtype = model.tensors["x"].dtype
    for op in model.ops:
        a = op.inputs[0]
        p = model.op_params[op.output]
        if op.kind == "fully_connected":
            raw = _fully_connected(g, model, op, a)
        elif op.kind in ("add", "sub"):
            raw = _add_or_sub(g, p, a, op.inputs[1], op.kind == "sub")
        elif op.kind == "mul":
            raw = _mul(g, p, a, op.inputs[1])
        elif model.scheme_spec.lookup_activations:  # logistic / tanh: the golden model's own table
            g.node("Gather", [g.const(p.table, np.int8, "table"), g.add(g.i64(a), 128)], op.output)
            continue
        else:
            raw = _activation_int16(g, p, a, op.kind == "logistic")
        g.saturate(raw, dtype, op.output)
    elem = ONNX_TYPES[dtype]
    value_info = lambda name: helper.make_tensor_value_info(name, elem, ["batch", model.tensor_widths[name]])
    inputs = [value_info("x")] + [value_info(h) for h, _ in model.states]
    outputs = [value_info(h) for _, h in model.states] + [value_info("logits")]
    graph = helper.make_graph(g.nodes, f"edgegru_{model.scheme}_step", inputs, outputs, initializer=g.initializers)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgegru")
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model
