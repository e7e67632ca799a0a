"""One small interface over the TFLite runtimes we check exports against.

Backends:
  "litert"          ai_edge_litert.interpreter, default op resolver (XNNPACK delegate)
  "litert-ref"      ai_edge_litert.interpreter, reference kernels (OpResolverType.BUILTIN_REF)
  "tflite-runtime"  tflite_runtime.interpreter, reference kernels (OpResolverType.BUILTIN_REF)
  "tflm"            TensorFlow Lite Micro's Python interpreter (tflite-micro)

`load_runner(backend, model_bytes)` validates the bytes first (`check_tflite_bytes`), then returns
a `Runner` with `.inputs` / `.outputs` (lists of `TensorInfo`) and `.run(feeds) -> outputs`.
Every failure is an `EdgeGRUError` with a message that says what went wrong.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from edgegru.errors import EdgeGRUError

__all__ = [
    "BACKENDS",
    "TensorInfo",
    "Runner",
    "check_tflite_bytes",
    "load_runner",
]

BACKENDS = ("litert", "litert-ref", "tflite-runtime", "tflm")

_PIP = {
    "litert": "ai-edge-litert",
    "litert-ref": "ai-edge-litert",
    "tflite-runtime": "tflite-runtime",
    "tflm": "tflite-micro",
}

TFLM_MAX_ARENA = 16 * 1024 * 1024
_TFLM_MIN_ARENA = 16 * 1024

_NP_OF_TFLITE = {
    "FLOAT32": np.float32,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
}


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: name, shape, numpy dtype and (first) quantization parameters."""

    name: str
    shape: tuple
    dtype: np.dtype
    scale: float
    zero_point: int


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
def _schema():
    try:
        from tflite_micro.python.tflite_micro.runtime import schema_fb
    except ImportError as exc:
        raise EdgeGRUError(f"cannot parse TFLite models: {exc}; install it with `pip install tflite-micro`") from exc
    return schema_fb


def _parse_model(data: bytes):
    fb = _schema()
    try:
        model = fb.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # flatbuffers raises assorted errors on corrupt input
        raise EdgeGRUError(
            f"not a valid TFLite model: the flatbuffer ({len(data)} bytes) does not parse "
            f"({type(exc).__name__}: {exc}); the file is probably truncated or corrupt"
        ) from exc
    if not model.subgraphs:
        raise EdgeGRUError("not a valid TFLite model: it has no subgraph")
    return model


def check_tflite_bytes(data) -> None:
    """Raise EdgeGRUError unless `data` looks like a parseable .tflite flatbuffer."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EdgeGRUError(f"a TFLite model must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) == 0:
        raise EdgeGRUError("not a valid TFLite model: the model is empty (0 bytes)")
    if len(data) < 8:
        raise EdgeGRUError(f"not a valid TFLite model: only {len(data)} bytes, a flatbuffer needs at least 8")
    if data[4:8] != b"TFL3":
        raise EdgeGRUError(
            f"not a valid TFLite model: file identifier at bytes 4..8 is {data[4:8]!r}, expected b'TFL3'"
        )
    _parse_model(data)


def _infos_from_model(model, indices) -> list[TensorInfo]:
    fb = _schema()
    names = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    sg = model.subgraphs[0]
    out = []
    for i in indices:
        t = sg.tensors[i]
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        dtype = np.dtype(_NP_OF_TFLITE.get(names.get(t.type), np.uint8))
        q = t.quantization
        scale = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) else 0.0
        zp = int(q.zeroPoint[0]) if q is not None and q.zeroPoint is not None and len(q.zeroPoint) else 0
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        out.append(TensorInfo(name, shape, dtype, scale, zp))
    return out


# ---------------------------------------------------------------------------------------------
# Runners
# ---------------------------------------------------------------------------------------------
class Runner:
    """Runs one model on one backend. `run` takes and returns {tensor name: array}."""

    backend: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def run(self, feeds: dict) -> dict:
        self._check_feeds(feeds)
        arrays = [np.ascontiguousarray(feeds[info.name]) for info in self.inputs]
        results = self._run(arrays)
        return {info.name: np.array(r, copy=True) for info, r in zip(self.outputs, results)}

    def _check_feeds(self, feeds) -> None:
        if not isinstance(feeds, dict):
            raise EdgeGRUError(f"{self.backend}: feeds must be a dict of name -> array, got {type(feeds).__name__}")
        expected = [i.name for i in self.inputs]
        if sorted(feeds) != sorted(expected):
            raise EdgeGRUError(f"{self.backend}: expected inputs {expected}, got {sorted(feeds)}")
        for info in self.inputs:
            value = feeds[info.name]
            if not isinstance(value, np.ndarray):
                raise EdgeGRUError(
                    f"{self.backend}: input {info.name!r} must be a numpy array of dtype {info.dtype}, "
                    f"got {type(value).__name__}"
                )
            if value.dtype != info.dtype:
                raise EdgeGRUError(
                    f"{self.backend}: input {info.name!r} expected dtype {info.dtype}, got {value.dtype}"
                )
            if tuple(value.shape) != tuple(info.shape):
                raise EdgeGRUError(
                    f"{self.backend}: input {info.name!r} expected shape {tuple(info.shape)}, got {tuple(value.shape)}"
                )

    def _run(self, arrays):  # pragma: no cover - abstract
        raise NotImplementedError


class _TfliteRunner(Runner):
    def __init__(self, backend: str, interpreter):
        self.backend = backend
        self._interp = interpreter
        self._in = interpreter.get_input_details()
        self._out = interpreter.get_output_details()
        self.inputs = [self._info(d) for d in self._in]
        self.outputs = [self._info(d) for d in self._out]

    @staticmethod
    def _info(d) -> TensorInfo:
        scale, zp = d.get("quantization", (0.0, 0))
        return TensorInfo(str(d["name"]), tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]), float(scale), int(zp))

    def _run(self, arrays):
        try:
            for d, a in zip(self._in, arrays):
                self._interp.set_tensor(d["index"], a)
            self._interp.invoke()
            return [self._interp.get_tensor(d["index"]) for d in self._out]
        except Exception as exc:
            raise EdgeGRUError(f"{self.backend}: invoke failed: {exc}") from exc


class _TflmRunner(Runner):
    def __init__(self, interpreter, arena_size: int, model):
        self.backend = "tflm"
        self.arena_size = arena_size
        self._interp = interpreter
        sg = model.subgraphs[0]
        self.inputs = _infos_from_model(model, list(sg.inputs))
        self.outputs = _infos_from_model(model, list(sg.outputs))

    def _run(self, arrays):
        for k, a in enumerate(arrays):
            _call_tflm("set input", lambda k=k, a=a: self._interp.set_input(a, k))
        _call_tflm("invoke", self._interp.invoke)
        return [_call_tflm("get output", lambda k=k: self._interp.get_output(k)) for k in range(len(self.outputs))]


# ---------------------------------------------------------------------------------------------
# C-level stderr capture (TFLM prints its real reasons there, not in the Python exception)
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _capture_fd2():
    """Redirect file descriptor 2 into a temp file; yields a list that receives the text."""
    captured: list[str] = []
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield captured
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read().decode("utf-8", errors="replace"))


def _tflm_reason(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-8:])


def _call_tflm(what: str, fn):
    with _capture_fd2() as cap:
        try:
            result = fn()
            error = None
        except Exception as exc:  # TFLM raises RuntimeError/ValueError with a generic text
            result, error = None, exc
    if error is not None:
        reason = _tflm_reason(cap[0] if cap else "")
        detail = f"{error}" + (f"; TFLM says: {reason}" if reason else "")
        raise EdgeGRUError(f"tflm: {what} failed: {detail}") from error
    return result


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------
def _load_litert(model_bytes: bytes, reference: bool):
    backend = "litert-ref" if reference else "litert"
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError as exc:
        raise EdgeGRUError(f"backend {backend!r} needs `pip install ai-edge-litert` ({exc})") from exc
    kwargs = {"model_content": bytes(model_bytes)}
    if reference:
        kwargs["experimental_op_resolver_type"] = litert.OpResolverType.BUILTIN_REF
    return backend, litert.Interpreter, kwargs


def _load_tflite_runtime(model_bytes: bytes):
    try:
        from tflite_runtime import interpreter as tfl
    except ImportError as exc:
        raise EdgeGRUError(f"backend 'tflite-runtime' needs `pip install tflite-runtime` ({exc})") from exc
    kwargs = {
        "model_content": bytes(model_bytes),
        "experimental_op_resolver_type": tfl.OpResolverType.BUILTIN_REF,
    }
    return "tflite-runtime", tfl.Interpreter, kwargs


def _make_tflite_runner(backend, cls, kwargs) -> Runner:
    with _capture_fd2() as cap:
        try:
            interp = cls(**kwargs)
            interp.allocate_tensors()
            error = None
        except Exception as exc:
            error = exc
    if error is not None:
        reason = _tflm_reason(cap[0] if cap else "")
        raise EdgeGRUError(
            f"{backend}: cannot load the model: {error}" + (f"; runtime says: {reason}" if reason else "")
        ) from error
    return _TfliteRunner(backend, interp)


def _load_tflm(model_bytes: bytes, model) -> Runner:
    try:
        from tflite_micro.python.tflite_micro import runtime as tflm
    except ImportError as exc:
        raise EdgeGRUError(f"backend 'tflm' needs `pip install tflite-micro` ({exc})") from exc
    arena = _TFLM_MIN_ARENA
    last_error, last_reason = None, ""
    while arena <= TFLM_MAX_ARENA:
        with _capture_fd2() as cap:
            try:
                interp = tflm.Interpreter.from_bytes(bytes(model_bytes), arena_size=arena)
                error = None
            except Exception as exc:
                interp, error = None, exc
        if error is None:
            return _TflmRunner(interp, arena, model)
        last_error, last_reason = error, _tflm_reason(cap[0] if cap else "")
        # Only a too-small arena is worth retrying; any other reason is final.
        if "arena" not in last_reason.lower() and "allocate" not in last_reason.lower():
            break
        arena *= 2
    raise EdgeGRUError(
        f"tflm: cannot load the model (arena up to {arena} bytes): {last_error}"
        + (f"; TFLM says: {last_reason}" if last_reason else "")
    ) from last_error


def load_runner(backend: str, model_bytes: bytes) -> Runner:
    """Validate `model_bytes` and return a Runner for `backend` (one of BACKENDS)."""
    if backend not in BACKENDS:
        raise EdgeGRUError(f"unknown TFLite backend {backend!r}; known backends: {', '.join(BACKENDS)}")
    check_tflite_bytes(model_bytes)
    model_bytes = bytes(model_bytes)
    if backend == "tflm":
        return _load_tflm(model_bytes, _parse_model(model_bytes))
    if backend == "tflite-runtime":
        return _make_tflite_runner(*_load_tflite_runtime(model_bytes))
    return _make_tflite_runner(*_load_litert(model_bytes, reference=(backend == "litert-ref")))
