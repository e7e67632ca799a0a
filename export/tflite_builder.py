"""A small, deterministic TFLite graph builder over the flatbuffer object API.

    builder = GraphBuilder("one GRU step")
    x = builder.tensor("x", [1, 8], np.int8, scale=0.05, zero_point=-3)
    w = builder.tensor("w", [16, 8], np.int8, scale=[...16 scales], zero_point=0, data=weights)
    ...
    builder.op("FULLY_CONNECTED", [x, w, b], [y])
    model_bytes = builder.finish(inputs=[x], outputs=[y])

Ops (kind names as in the TFLite schema, case-insensitive): FULLY_CONNECTED, ADD, SUB, MUL,
LOGISTIC, TANH, QUANTIZE, DEQUANTIZE, CONCATENATION.  One subgraph, op version 1.
The same sequence of calls always yields byte-identical output.

Pitfalls handled here (FIELD_NOTES §2): model version 3, file identifier b"TFL3", builtin_code and
deprecated_builtin_code both set, buffer 0 the empty sentinel, shapes / scales / zero points packed
as Python lists, buffer data as uint8, ADD/SUB pot_scale_int16=False.  With `strict=True` (the
default) the builder also refuses graphs the runtimes would run silently wrong or differently:
  - LOGISTIC output: int8 scale 1/256 zp -128; int16 scale 1/32768 zp 0.
  - TANH output:     int8 scale 1/128 zp 0;    int16 scale 1/32768 zp 0.
  - 16x8 FULLY_CONNECTED (int16 input): an int64 bias must be present (an all-zero one if none).
"""

from __future__ import annotations

import flatbuffers
import numpy as np

from edgegru.errors import EdgeGRUError

try:
    from tflite_micro.python.tflite_micro.runtime import schema_fb as _fb
except ImportError as exc:  # pragma: no cover - depends on the environment
    _fb, _IMPORT_ERROR = None, exc
else:
    _IMPORT_ERROR = None

__all__ = ["GraphBuilder", "OP_KINDS", "TFLITE_FILE_IDENTIFIER", "SCHEMA_VERSION"]

TFLITE_FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3

# kind -> (options table name or None, {option name: default}, allowed input counts or None = any >= 1)
_ACT = {"fused_activation_function": "NONE"}
OP_KINDS = {
    "FULLY_CONNECTED": ("FullyConnectedOptions", {**_ACT, "keep_num_dims": False}, (2, 3)),
    "ADD": ("AddOptions", {**_ACT, "pot_scale_int16": False}, (2,)),
    "SUB": ("SubOptions", {**_ACT, "pot_scale_int16": False}, (2,)),
    "MUL": ("MulOptions", dict(_ACT), (2,)),
    "LOGISTIC": (None, {}, (1,)),
    "TANH": (None, {}, (1,)),
    "QUANTIZE": ("QuantizeOptions", {}, (1,)),
    "DEQUANTIZE": ("DequantizeOptions", {}, (1,)),
    "CONCATENATION": ("ConcatenationOptions", {**_ACT, "axis": 0}, None),
}

_DTYPES = {
    np.dtype(np.float32): "FLOAT32",
    np.dtype(np.int8): "INT8",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.int16): "INT16",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
}

# (op kind, activation dtype) -> the only output (scale, zero point) the runtimes compute correctly
_FIXED_OUTPUTS = {
    ("LOGISTIC", "INT8"): (1 / 256, -128),
    ("TANH", "INT8"): (1 / 128, 0),
    ("LOGISTIC", "INT16"): (1 / 32768, 0),
    ("TANH", "INT16"): (1 / 32768, 0),
}


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

    def __init__(self, description: str = "", strict: bool = True):
        self._fb = _schema()
        self.description = str(description)
        self.strict = strict
        self._tensors: list = []
        self._buffers: list = []  # raw little-endian bytes or None; the sentinel is added in finish()
        self._ops: list = []  # (kind, inputs, outputs, options)
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
    def op(self, kind: str, inputs, outputs, **options) -> None:
        """Append an operator.  -1 in `inputs` marks an absent optional input (FULLY_CONNECTED bias).

        Options (snake_case, as in the schema): fused_activation_function ("NONE", "RELU", ...) for
        FULLY_CONNECTED/ADD/SUB/MUL/CONCATENATION, keep_num_dims, pot_scale_int16 (default False),
        axis (CONCATENATION).
        """
        kind = str(kind).upper()
        if kind not in OP_KINDS:
            raise EdgeGRUError(f"unknown op kind {kind!r}; known: {', '.join(OP_KINDS)}")
        _, defaults, counts = OP_KINDS[kind]
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise EdgeGRUError(f"op {kind}: unknown option(s) {unknown}; allowed: {sorted(defaults) or 'none'}")
        inputs, outputs = [int(i) for i in inputs], [int(o) for o in outputs]
        if (counts is not None and len(inputs) not in counts) or not inputs or len(outputs) != 1:
            raise EdgeGRUError(f"op {kind}: got {len(inputs)} inputs and {len(outputs)} outputs; expected "
                               f"{' or '.join(map(str, counts)) if counts else 'one or more'} inputs and 1 output")
        n = len(self._tensors)
        for i in inputs + outputs:
            if not -1 <= i < n:
                raise EdgeGRUError(f"op {kind}: tensor index {i} out of range (have {n} tensors)")
        if -1 in outputs or (-1 in inputs and kind != "FULLY_CONNECTED"):
            raise EdgeGRUError(f"op {kind}: only the FULLY_CONNECTED bias may be absent (-1)")
        if self.strict:
            self._check_op(kind, inputs, outputs[0])
        self._ops.append((kind, inputs, outputs, {**defaults, **options}))

    def _type_name(self, index: int) -> str:
        return next(k for k, v in vars(self._fb.TensorType).items() if v == self._tensors[index].type)

    def _check_op(self, kind: str, inputs: list, output: int) -> None:
        """Refuse what the runtimes would compute silently wrong (FIELD_NOTES §2)."""
        out_type = self._type_name(output)
        fixed = _FIXED_OUTPUTS.get((kind, out_type))
        if fixed is not None:
            q = self._tensors[output].quantization
            got = (q.scale[0], q.zeroPoint[0]) if q is not None else (None, None)
            if got[0] is None or np.float32(got[0]) != np.float32(fixed[0]) or got[1] != fixed[1]:
                raise EdgeGRUError(f"op {kind} {out_type}: output must have scale {fixed[0]!r} and zero point "
                                   f"{fixed[1]}, got scale {got[0]!r} zero point {got[1]}")
        if kind == "FULLY_CONNECTED" and self._type_name(inputs[0]) == "INT16":
            if len(inputs) < 3 or inputs[2] == -1 or self._type_name(inputs[2]) != "INT64":
                raise EdgeGRUError("op FULLY_CONNECTED 16x8: needs an int64 bias (an all-zero one if the "
                                   "layer has none); runtimes disagree without it")

    def _options(self, kind: str, values: dict):
        fb = self._fb
        table = OP_KINDS[kind][0]
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

        kinds = list(dict.fromkeys(kind for kind, *_ in self._ops))  # opcode order: first use
        opcodes = []
        for kind in kinds:
            code = fb.OperatorCodeT()
            code.builtinCode = getattr(fb.BuiltinOperator, kind)
            code.deprecatedBuiltinCode = min(code.builtinCode, 127)
            code.version = 1
            opcodes.append(code)

        operators = []
        for kind, ins, outs, values in self._ops:
            o = fb.OperatorT()
            o.opcodeIndex = kinds.index(kind)
            o.inputs, o.outputs = list(ins), list(outs)
            o.builtinOptionsType, o.builtinOptions = self._options(kind, values)
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
