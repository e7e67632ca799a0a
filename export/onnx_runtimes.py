"""Running ONNX models: onnxruntime (CPU) and onnx's reference evaluator, behind one call.

`load_onnx_runner(backend, model_bytes)` validates the bytes (a corrupt or foreign file is an
EdgeGRUError, not a protobuf traceback) and returns `run(feeds: dict) -> dict` that checks input names,
dtypes and shapes against the model's declared inputs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import helper

from edgegru.errors import EdgeGRUError

ONNX_BACKENDS = ("onnxruntime", "onnx-reference")


def parse_onnx(model_bytes: bytes) -> onnx.ModelProto:
    if not model_bytes:
        raise EdgeGRUError("the ONNX file is empty")
    try:
        model = onnx.load_from_string(model_bytes)
        onnx.checker.check_model(model)
    except Exception as error:  # protobuf's DecodeError and the checker's errors have no common base
        raise EdgeGRUError(f"not a valid ONNX model ({str(error).splitlines()[0][:200]})") from None
    if not model.graph.input:
        raise EdgeGRUError("not a valid ONNX model (the graph has no inputs)")
    return model


def _declared_inputs(model: onnx.ModelProto) -> dict:
    inputs = {}
    for value in model.graph.input:
        tensor_type = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        inputs[value.name] = (np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)), dims)
    return inputs


def load_onnx_runner(backend: str, model_bytes: bytes) -> Callable[[dict], dict]:
    if backend not in ONNX_BACKENDS:
        raise EdgeGRUError(f"unknown ONNX backend '{backend}'; known: {', '.join(ONNX_BACKENDS)}")
    model = parse_onnx(model_bytes)
    declared = _declared_inputs(model)
    output_names = [o.name for o in model.graph.output]
    if backend == "onnxruntime":
        import onnxruntime

        session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
        execute = lambda feeds: session.run(output_names, feeds)
    else:
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(model)
        execute = lambda feeds: evaluator.run(output_names, feeds)

    def run(feeds: dict) -> dict:
        if sorted(feeds) != sorted(declared):
            raise EdgeGRUError(f"{backend}: expected inputs {sorted(declared)}, got {sorted(feeds)}")
        for name, (dtype, dims) in declared.items():
            value = feeds[name]
            if not isinstance(value, np.ndarray) or value.dtype != dtype:
                raise EdgeGRUError(f"{backend}: input {name!r} must be a {dtype} array, got "
                                   f"{getattr(value, 'dtype', type(value).__name__)}")
            if value.ndim != len(dims) or any(d is not None and d != n for d, n in zip(dims, value.shape)):
                raise EdgeGRUError(f"{backend}: input {name!r} must have shape "
                                   f"{['?' if d is None else d for d in dims]}, got {list(value.shape)}")
        return dict(zip(output_names, execute(feeds)))
    return run
