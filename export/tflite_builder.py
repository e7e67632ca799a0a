"""A small, deterministic TFLite graph builder over the flatbuffer object API.

Only what a one-step quantized GRU needs: FULLY_CONNECTED, ADD, SUB, MUL, LOGISTIC, TANH,
with int8 / int16 / int32 / int64 / float32 tensors and per-tensor or per-channel quantization.
The same sequence of calls always yields byte-identical output (no timestamps, no dict order
dependence, fixed metadata).

Pitfalls handled here (see FIELD_NOTES §2): model version 3, file identifier b"TFL3",
builtin_code and deprecated_builtin_code both set, op version 1, buffer 0 is the empty
sentinel, shapes/scales/zero points passed as Python lists, buffer data as uint8,
ADD/SUB pot_scale_int16=False.
"""

from __future__ import annotations

import flatbuffers
import numpy as np

from edgegru.errors import EdgeGRUError

try:
    from tflite_micro.python.tflite_micro.runtime import schema_fb as _fb
except ImportError as exc:  # pragma: no cover - depends on the environment
    _fb = None
    _IMPORT_ERROR = exc
else:
    _IMPORT_ERROR = None

__all__ = ["GraphBuilder", "OP_KINDS", "TFLITE_FILE_IDENTIFIER"]

TFLITE_FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3

# kind -> (BuiltinOperator name, BuiltinOptions name or None, number of inputs)
OP_KINDS = {
    "fully_connected": ("FULLY_CONNECTED", "FullyConnectedOptions", 3),
    "add": ("ADD", "AddOptions", 2),
    "sub": ("SUB", "SubOptions", 2),
    "mul": ("MUL", "MulOptions", 2),
    "logistic": ("LOGISTIC", None, 1),
    "tanh": ("TANH", None, 1),
}

_DTYPES = {
    np.dtype(np.float32): "FLOAT32",
    np.dtype(np.int8): "INT8",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.int16): "INT16",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
}


def _schema():
    if _fb is None:
        raise EdgeGRUError(
            f"the TFLite schema module is missing ({_IMPORT_ERROR}); install it with `pip install tflite-micro`"
        )
    return _fb


def _as_list(value, cast):
    if isinstance(value, (list, tuple, np.ndarray)):
        return [cast(v) for v in np.asarray(value).reshape(-1).tolist()]
    return [cast(value)]


class GraphBuilder:
    """Collects tensors and operators of one subgraph, then packs a .tflite flatbuffer."""

    def __init__(self, description: str = ""):
        self._fb = _schema()
        self.description = str(description)
        self._tensors: list = []
        self._buffers: list = []  # bytes or None; buffer 0 (the empty sentinel) is added in finish()
        self._ops: list[tuple[str, list[int], list[int]]] = []
        self._names: set[str] = set()

    # -- tensors -------------------------------------------------------------------------------
    def tensor(
        self,
        name: str,
        shape,
        dtype,
        scale=None,
        zero_point=0,
        quantized_dimension: int = 0,
        data: np.ndarray | None = None,
    ) -> int:
        """Add a tensor (a constant when `data` is given) and return its index."""
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
            scales = _as_list(scale, float)
            zps = _as_list(zero_point, int)
            if len(zps) == 1 and len(scales) > 1:
                zps = zps * len(scales)
            if len(zps) != len(scales):
                raise EdgeGRUError(f"tensor {name!r}: {len(scales)} scales but {len(zps)} zero points")
            if len(scales) > 1:
                if not 0 <= quantized_dimension < len(shape) or shape[quantized_dimension] != len(scales):
                    raise EdgeGRUError(
                        f"tensor {name!r}: {len(scales)} per-channel scales do not match dimension "
                        f"{quantized_dimension} of shape {shape}"
                    )
            q = fb.QuantizationParametersT()
            q.scale = scales
            q.zeroPoint = zps
            q.quantizedDimension = int(quantized_dimension)
            t.quantization = q
        if data is not None:
            arr = np.asarray(data)
            if arr.dtype != dtype:
                raise EdgeGRUError(f"tensor {name!r}: data dtype {arr.dtype} differs from tensor dtype {dtype}")
            if list(arr.shape) != shape:
                raise EdgeGRUError(f"tensor {name!r}: data shape {list(arr.shape)} differs from shape {shape}")
            raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            self._buffers.append(raw)
        else:
            self._buffers.append(None)
        t.buffer = len(self._buffers)  # index into the final buffer list (0 is the sentinel)
        self._tensors.append(t)
        self._names.add(name)
        return len(self._tensors) - 1

    # -- operators -----------------------------------------------------------------------------
    def op(self, kind: str, inputs: list[int], outputs: list[int]) -> None:
        """Append an operator; -1 in `inputs` marks an optional input that is absent."""
        if kind not in OP_KINDS:
            raise EdgeGRUError(f"unknown op kind {kind!r}; known: {', '.join(OP_KINDS)}")
        n = len(self._tensors)
        for i in list(inputs) + list(outputs):
            if not (i == -1 or 0 <= int(i) < n):
                raise EdgeGRUError(f"op {kind}: tensor index {i} out of range (have {n} tensors)")
        if any(int(i) == -1 for i in outputs):
            raise EdgeGRUError(f"op {kind}: outputs cannot be -1")
        self._ops.append((kind, [int(i) for i in inputs], [int(o) for o in outputs]))

    # -- packing -------------------------------------------------------------------------------
    def _options(self, kind: str):
        fb = self._fb
        if kind == "fully_connected":
            o = fb.FullyConnectedOptionsT()
            o.fusedActivationFunction = fb.ActivationFunctionType.NONE
            o.weightsFormat = fb.FullyConnectedOptionsWeightsFormat.DEFAULT
            o.keepNumDims = False
            o.asymmetricQuantizeInputs = False
            return fb.BuiltinOptions.FullyConnectedOptions, o
        if kind in ("add", "sub"):
            o = fb.AddOptionsT() if kind == "add" else fb.SubOptionsT()
            o.fusedActivationFunction = fb.ActivationFunctionType.NONE
            o.potScaleInt16 = False
            return getattr(fb.BuiltinOptions, OP_KINDS[kind][1]), o
        if kind == "mul":
            o = fb.MulOptionsT()
            o.fusedActivationFunction = fb.ActivationFunctionType.NONE
            return fb.BuiltinOptions.MulOptions, o
        return fb.BuiltinOptions.NONE, None

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        """Pack the graph with the given graph inputs/outputs; returns the .tflite bytes."""
        fb = self._fb
        n = len(self._tensors)
        for i in list(inputs) + list(outputs):
            if not 0 <= int(i) < n:
                raise EdgeGRUError(f"graph input/output index {i} out of range (have {n} tensors)")

        codes: list[str] = []  # op kinds in first-use order -> opcode index
        operators = []
        for kind, ins, outs in self._ops:
            if kind not in codes:
                codes.append(kind)
            o = fb.OperatorT()
            o.opcodeIndex = codes.index(kind)
            o.inputs = list(ins)
            o.outputs = list(outs)
            o.builtinOptionsType, o.builtinOptions = self._options(kind)
            operators.append(o)

        opcodes = []
        for kind in codes:
            code = getattr(fb.BuiltinOperator, OP_KINDS[kind][0])
            c = fb.OperatorCodeT()
            c.builtinCode = code
            c.deprecatedBuiltinCode = min(code, 127)
            c.version = 1
            opcodes.append(c)

        buffers = [fb.BufferT()]  # buffer 0: empty sentinel
        for raw in self._buffers:
            b = fb.BufferT()
            if raw is not None:
                b.data = np.frombuffer(raw, dtype=np.uint8).copy()
            buffers.append(b)

        sg = fb.SubGraphT()
        sg.tensors = list(self._tensors)
        sg.inputs = [int(i) for i in inputs]
        sg.outputs = [int(o) for o in outputs]
        sg.operators = operators
        sg.name = "main"

        model = fb.ModelT()
        model.version = SCHEMA_VERSION
        model.description = self.description
        model.operatorCodes = opcodes
        model.subgraphs = [sg]
        model.buffers = buffers

        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=TFLITE_FILE_IDENTIFIER)
        return bytes(builder.Output())
