"""A small, deterministic TFLite graph builder over the flatbuffer object API.

    builder = GraphBuilder("one GRU step")
    x = builder.tensor("x", [1, 8], np.int8, scale=0.05, zero_point=-3)
    w = builder.tensor("w", [16, 8], np.int8, scale=[...16 scales], zero_point=0, data=weights)
    ...
    builder.op("FULLY_CONNECTED", [x, w, b], [y])
    model_bytes = builder.finish(inputs=[x], outputs=[y])

Ops (kind names as in the TFLite schema, case-insensitive): the step graph's FULLY_CONNECTED (with
its bias), ADD, SUB, MUL, LOGISTIC, TANH.  One subgraph, op version 1, no fused activation.  The
same sequence of calls always yields byte-identical output.

The flatbuffer pitfalls this handles are listed in docs/runtimes.md: model version 3, file
identifier b"TFL3", builtin_code and deprecated_builtin_code both set, buffer 0 the empty sentinel,
shapes / scales / zero points packed as Python lists, buffer data as uint8, ADD/SUB
pot_scale_int16=False.  The builder also refuses graphs the runtimes would run silently wrong or
differently:
  - LOGISTIC and TANH outputs other than the scale and zero point the scheme fixes
    (`tensor_quant.Scheme.logistic_output` / `tanh_output`);
  - a 16x8 FULLY_CONNECTED (int16 input) whose bias is not int64.
"""

from __future__ import annotations

import flatbuffers
import numpy as np

from edgegru.errors import EdgeGRUError
from edgegru.tensor_quant import SCHEMES

try:
    from tflite_micro.python.tflite_micro.runtime import schema_fb as _fb
except ImportError as exc:  # pragma: no cover - depends on the environment
    _fb, _IMPORT_ERROR = None, exc
else:
    _IMPORT_ERROR = None

__all__ = ["GraphBuilder", "TFLITE_FILE_IDENTIFIER", "SCHEMA_VERSION"]

TFLITE_FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3

# kind -> (options table name or None, {option name: value}, input count)
_ACT = {"fused_activation_function": "NONE"}
_OP_KINDS = {
    "FULLY_CONNECTED": ("FullyConnectedOptions", {**_ACT, "keep_num_dims": False}, 3),  # input, weights, bias
    "ADD": ("AddOptions", {**_ACT, "pot_scale_int16": False}, 2),
    "SUB": ("SubOptions", {**_ACT, "pot_scale_int16": False}, 2),
    "MUL": ("MulOptions", dict(_ACT), 2),
    "LOGISTIC": (None, {}, 1),
    "TANH": (None, {}, 1),
}

_DTYPES = {
    np.dtype(np.float32): "FLOAT32",
    np.dtype(np.int8): "INT8",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.int16): "INT16",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
}

# (op kind, activation type) -> the only output (scale, zero point) the runtimes compute correctly
_FIXED_OUTPUTS = {(kind.upper(), scheme.activation.upper()): scheme.fixed_output(kind)
                  for scheme in SCHEMES.values() for kind in ("logistic", "tanh")}


def _schema():
    if _fb is None:
        raise EdgeGRUError(f"the TFLite schema module is missing ({_IMPORT_ERROR}); `pip install tflite-micro`")
    return _fb


def _as_list(value, cast) -> list:
    return [cast(v) for v in np.asarray(value).reshape(-1).tolist()]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


class GraphBuilder:
    """Collects the tensors and operators of one subgraph, then packs a .tflite flatbuffer."""

    def __init__(self, description: str = ""):
        self._fb = _schema()
        self.description = str(description)
        self._tensors: list = []
        self._buffers: list = []  # raw little-endian bytes or None; the sentinel is added in finish()
        self._ops: list = []  # (kind, inputs, outputs)
        self._names: set[str] = set()

    # -- tensors -------------------------------------------------------------------------------
    def tensor(self, name: str, shape, dtype, scale=None, zero_point=0, quantized_dimension: int = 0,
               data: np.ndarray | None = None) -> int:
        """Add a tensor and return its index; a constant when `data` is given.

        real = scale * (q - zero_point).  `scale` None: no quantization parameters; a float: per
        tensor; a list: per channel along `quantized_dimension` (one zero point is repeated).
        `data` must have exactly `dtype` and `shape`.
        """
        fb = self._fb
        dtype = np.dtype(dtype)
        if dtype not in _DTYPES:
            raise EdgeGRUError(f"tensor {name!r}: dtype {dtype} not supported; use one of {sorted(map(str, _DTYPES))}")
        if name in self._names:
            raise EdgeGRUError(f"tensor name {name!r} used twice")
        shape = [int(d) for d in shape]
        t = fb.TensorT()
        t.name = str(name)
        t.shape = shape
        t.type = getattr(fb.TensorType, _DTYPES[dtype])
        if scale is not None:
            t.quantization = self._quantization(name, shape, scale, zero_point, quantized_dimension)
        if data is not None:
            array = np.asarray(data)
            if array.dtype != dtype or list(array.shape) != shape:
                raise EdgeGRUError(f"tensor {name!r}: data is {array.dtype} {list(array.shape)}, "
                                   f"expected {dtype} {shape}")
            self._buffers.append(np.ascontiguousarray(array, dtype=dtype.newbyteorder("<")).tobytes())
        else:
            self._buffers.append(None)
        t.buffer = len(self._buffers)  # index into the final buffer list, after the sentinel
        self._tensors.append(t)
        self._names.add(name)
        return len(self._tensors) - 1

    def _quantization(self, name, shape, scale, zero_point, quantized_dimension):
        scales, zero_points = _as_list(scale, float), _as_list(zero_point, int)
        if len(zero_points) == 1:
            zero_points = zero_points * len(scales)
        if len(zero_points) != len(scales):
            raise EdgeGRUError(f"tensor {name!r}: {len(scales)} scales but {len(zero_points)} zero points")
        if len(scales) > 1 and not (0 <= quantized_dimension < len(shape)
                                    and shape[quantized_dimension] == len(scales)):
            raise EdgeGRUError(f"tensor {name!r}: {len(scales)} per-channel scales do not match dimension "
                               f"{quantized_dimension} of shape {shape}")
        q = self._fb.QuantizationParametersT()
        q.scale, q.zeroPoint, q.quantizedDimension = scales, zero_points, int(quantized_dimension)
        return q

    # -- operators -----------------------------------------------------------------------------
    def op(self, kind: str, inputs, outputs) -> None:
        """Append an operator: tensor indices of its inputs (FULLY_CONNECTED: input, weights, bias) and
        of its one output.  Options are fixed: no fused activation, ADD/SUB pot_scale_int16 False."""
        kind = str(kind).upper()
        if kind not in _OP_KINDS:
            raise EdgeGRUError(f"unknown op kind {kind!r}; known: {', '.join(_OP_KINDS)}")
        count = _OP_KINDS[kind][2]
        inputs, outputs = [int(i) for i in inputs], [int(o) for o in outputs]
        if len(inputs) != count or len(outputs) != 1:
            raise EdgeGRUError(f"op {kind}: got {len(inputs)} inputs and {len(outputs)} outputs; expected "
                               f"{count} inputs and 1 output")
        n = len(self._tensors)
        for i in inputs + outputs:
            if not 0 <= i < n:
                raise EdgeGRUError(f"op {kind}: tensor index {i} out of range (have {n} tensors)")
        self._check_op(kind, inputs, outputs[0])
        self._ops.append((kind, inputs, outputs))

    def _type_name(self, index: int) -> str:
        return next(k for k, v in vars(self._fb.TensorType).items() if v == self._tensors[index].type)

    def _check_op(self, kind: str, inputs: list, output: int) -> None:
        """Refuse what the runtimes would compute silently wrong (docs/runtimes.md)."""
        out_type = self._type_name(output)
        fixed = _FIXED_OUTPUTS.get((kind, out_type))
        if fixed is not None:
            q = self._tensors[output].quantization
            got = (q.scale[0], q.zeroPoint[0]) if q is not None else (None, None)
            if got[0] is None or np.float32(got[0]) != np.float32(fixed[0]) or got[1] != fixed[1]:
                raise EdgeGRUError(f"op {kind} {out_type}: output must have scale {fixed[0]!r} and zero point "
                                   f"{fixed[1]}, got scale {got[0]!r} zero point {got[1]}")
        if kind == "FULLY_CONNECTED" and self._type_name(inputs[0]) == "INT16":
            if self._type_name(inputs[2]) != "INT64":
                raise EdgeGRUError("op FULLY_CONNECTED 16x8: needs an int64 bias (an all-zero one if the "
                                   "layer has none); runtimes disagree without it")

    def _options(self, kind: str):
        fb = self._fb
        table, values, _ = _OP_KINDS[kind]
        if table is None:
            return fb.BuiltinOptions.NONE, None
        options = getattr(fb, table + "T")()
        for key, value in values.items():
            if key == "fused_activation_function":
                value = getattr(fb.ActivationFunctionType, str(value).upper())
            setattr(options, _camel(key), value)
        return getattr(fb.BuiltinOptions, table), options

    # -- packing -------------------------------------------------------------------------------
    def finish(self, inputs, outputs) -> bytes:
        """Pack the graph with these graph inputs and outputs (tensor indices); returns .tflite bytes."""
        fb = self._fb
        inputs, outputs = [int(i) for i in inputs], [int(o) for o in outputs]
        n = len(self._tensors)
        for i in inputs + outputs:
            if not 0 <= i < n:
                raise EdgeGRUError(f"graph input/output index {i} out of range (have {n} tensors)")

        kinds = list(dict.fromkeys(kind for kind, _, _ in self._ops))  # opcode order: first use
        opcodes = []
        for kind in kinds:
            code = fb.OperatorCodeT()
            code.builtinCode = getattr(fb.BuiltinOperator, kind)
            code.deprecatedBuiltinCode = min(code.builtinCode, 127)
            code.version = 1
            opcodes.append(code)

        operators = []
        for kind, ins, outs in self._ops:
            o = fb.OperatorT()
            o.opcodeIndex = kinds.index(kind)
            o.inputs, o.outputs = list(ins), list(outs)
            o.builtinOptionsType, o.builtinOptions = self._options(kind)
            operators.append(o)

        buffers = [fb.BufferT()]  # buffer 0: the empty sentinel
        for raw in self._buffers:
            b = fb.BufferT()
            if raw is not None:
                b.data = np.frombuffer(raw, dtype=np.uint8).copy()  # packed as one uint8 vector
            buffers.append(b)

        sg = fb.SubGraphT()
        sg.name = "main"
        sg.tensors = list(self._tensors)
        sg.inputs, sg.outputs = inputs, outputs
        sg.operators = operators

        model = fb.ModelT()
        model.version = SCHEMA_VERSION
        model.description = self.description
        model.operatorCodes = opcodes
        model.subgraphs = [sg]
        model.buffers = buffers

        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=TFLITE_FILE_IDENTIFIER)
        return bytes(builder.Output())
