"""One small interface over the TFLite runtimes we check exports against.

Backends (docs/runtimes.md says how each rounds):
  "litert"          ai_edge_litert.interpreter, default kernels (XNNPACK delegate), pip ai-edge-litert
  "litert-ref"      ai_edge_litert.interpreter, reference kernels (OpResolverType.BUILTIN_REF)
  "tflite-runtime"  tflite_runtime.interpreter, reference kernels (BUILTIN_REF), pip tflite-runtime (numpy<2)
  "tflm"            TensorFlow Lite Micro's Python interpreter, pip tflite-micro
  "litert-arm64"    ai-edge-litert's aarch64 build, default kernels, in an arm64 Python under QEMU user mode
                    (`make litert-arm64` prepares it in ARM64_ROOT; `export/litert_child.py` runs there)

`load_runner(backend, model_bytes)` validates the bytes first (`check_tflite_bytes`), then returns a
`Runner` with `.inputs` / `.outputs` (lists of `TensorInfo`: name, shape, dtype, scale, zero point)
and `.run({name: array}) -> {name: array}`.  Every failure is an `EdgeGRUError`; the runtimes print
their real reasons on the C-level stderr, which is captured (file descriptor 2) into the message.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgegru.errors import EdgeGRUError

__all__ = ["BACKENDS", "TensorInfo", "Runner", "check_tflite_bytes", "load_runner",
           "TFLM_MIN_ARENA", "TFLM_MAX_ARENA"]

BACKENDS = ("litert", "litert-ref", "tflite-runtime", "tflm", "litert-arm64")

# An arm64 Debian Python with numpy and ai-edge-litert in site/, made by `make litert-arm64`; QEMU user
# mode runs it (QEMU 7.2 shows the host's /proc/cpuinfo, so the root holds an Arm one for XNNPACK).
ARM64_ROOT = Path(os.environ.get("EDGEGRU_ARM64_ROOT", Path(__file__).resolve().parent.parent / ".arm64"))
_LITERT_CHILD = Path(__file__).resolve().parent / "litert_child.py"
# The emulated core, matching the root's /proc/cpuinfo: a Neoverse N1 (the Cortex-A76 family of phone
# cores, with the dot product).  With QEMU 7.2's "max" core XNNPACK picks FULLY_CONNECTED kernels that
# come out wrong by up to 255 LSB; a core without the dot product meets an illegal instruction.
ARM64_CPU = "neoverse-n1"

# TFLM's arena: under about 464 bytes it segfaults at once, and a little too small an arena can
# segfault too (a two-layer GRU step: clean errors at 6 and 8.5-11 KiB, a crash at 8 KiB, fine from
# 11.5 KiB).  So the automatic arena starts generous, and an explicit one is tried in a child first.
TFLM_MIN_ARENA = 1024
TFLM_MAX_ARENA = 64 * 1024 * 1024
_TFLM_AUTO_MIN_ARENA = 64 * 1024
_TFLM_OUT_OF_MEMORY = re.compile(r"missing: \d+|Failed to (allocate|resize)|Too many buffers")
_TFLM_PROBE = """
import sys
from tflite_micro.python.tflite_micro import runtime
try:
    runtime.Interpreter.from_bytes(sys.stdin.buffer.read(), arena_size=int(sys.argv[1]))
except Exception:
    sys.exit(1)
"""

_NP_OF_TFLITE = {"FLOAT32": np.float32, "INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16,
                 "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_}


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: real = scale * (q - zero_point) (first channel's; 0.0 / 0 if float)."""

    name: str
    shape: tuple
    dtype: np.dtype
    scale: float
    zero_point: int


# --- validation ------------------------------------------------------------------------------


def _schema():
    try:
        from tflite_micro.python.tflite_micro.runtime import schema_fb
    except ImportError as exc:
        raise EdgeGRUError(f"cannot parse TFLite models ({exc}); `pip install tflite-micro`") from exc
    return schema_fb


def _parse_model(data: bytes):
    """The unpacked ModelT; the indices the runtimes follow blindly are checked to be in range."""
    try:
        model = _schema().ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # flatbuffers raises assorted errors on corrupt input
        raise EdgeGRUError(f"not a valid TFLite model: the flatbuffer ({len(data)} bytes) does not parse "
                           f"({type(exc).__name__}: {exc}); the file is probably truncated or corrupt") from exc
    if not model.subgraphs:
        raise EdgeGRUError("not a valid TFLite model: it has no subgraph")
    n_buffers, n_codes = len(model.buffers or []), len(model.operatorCodes or [])
    for sg in model.subgraphs:
        tensors = sg.tensors or []
        used = list(sg.inputs if sg.inputs is not None else []) + list(sg.outputs if sg.outputs is not None else [])
        for op in sg.operators or []:
            if not 0 <= op.opcodeIndex < n_codes:
                raise EdgeGRUError(f"not a valid TFLite model: opcode index {op.opcodeIndex} of {n_codes}")
            used += [i for i in list(op.inputs if op.inputs is not None else []) if i != -1]
            used += list(op.outputs if op.outputs is not None else [])
        bad = [int(i) for i in used if not 0 <= i < len(tensors)]
        if bad or any(not 0 <= t.buffer < max(n_buffers, 1) for t in tensors):
            raise EdgeGRUError(f"not a valid TFLite model: tensor or buffer index out of range "
                               f"({len(tensors)} tensors, {n_buffers} buffers); the file is corrupt")
    return model


def check_tflite_bytes(data) -> None:
    """Raise EdgeGRUError unless `data` is a parseable .tflite flatbuffer (identifier b"TFL3")."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EdgeGRUError(f"a TFLite model must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) == 0:
        raise EdgeGRUError("not a valid TFLite model: the model is empty (0 bytes)")
    if len(data) < 8:
        raise EdgeGRUError(f"not a valid TFLite model: only {len(data)} bytes, a flatbuffer needs at least 8")
    if data[4:8] != b"TFL3":
        raise EdgeGRUError(f"not a valid TFLite model: file identifier at bytes 4..8 is {data[4:8]!r}, "
                           f"expected b'TFL3'")
    _parse_model(data)


def _np_dtype(type_code: int) -> np.dtype:
    names = {v: k for k, v in vars(_schema().TensorType).items() if not k.startswith("_")}
    return np.dtype(_NP_OF_TFLITE.get(names.get(type_code), np.uint8))


def _tensor_infos(model, indices) -> list[TensorInfo]:
    tensors = model.subgraphs[0].tensors
    infos = []
    for i in indices:
        t = tensors[i]
        q = t.quantization
        scale = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) else 0.0
        zero_point = int(q.zeroPoint[0]) if q is not None and q.zeroPoint is not None and len(q.zeroPoint) else 0
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        infos.append(TensorInfo(name, shape, _np_dtype(t.type), scale, zero_point))
    return infos


# --- C-level stderr capture -------------------------------------------------------------------


@contextlib.contextmanager
def _capture_fd2():
    """Point file descriptor 2 at a temp file; yields a list that receives the captured text."""
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


def _call_capturing(fn):
    """(result, exception or None, captured C stderr text)."""
    with _capture_fd2() as captured:
        try:
            result, error = fn(), None
        except Exception as exc:  # the runtimes raise RuntimeError/ValueError with a generic text
            result, error = None, exc
    return result, error, captured[0] if captured else ""


def _reason(text: str, limit: int = 8) -> str:
    """The last distinct non-empty lines of a runtime's stderr, joined on one line."""
    lines = list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
    return " | ".join(lines[-limit:])


def _fail(what: str, error: Exception, stderr: str, who: str = "runtime") -> EdgeGRUError:
    reason = _reason(stderr)
    return EdgeGRUError(f"{what}: {error}" + (f"; {who} says: {reason}" if reason else ""))


# --- runners ----------------------------------------------------------------------------------


class Runner:
    """Runs one model on one backend; `run` takes and returns {tensor name: array}."""

    backend: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def run(self, feeds: dict) -> dict:
        """Feed every graph input (exact name, shape and dtype); returns copies of every graph output."""
        self._check_feeds(feeds)
        results = self._run([np.ascontiguousarray(feeds[info.name]) for info in self.inputs])
        return {info.name: np.array(value, copy=True) for info, value in zip(self.outputs, results)}

    def _check_feeds(self, feeds) -> None:
        if not isinstance(feeds, dict):
            raise EdgeGRUError(f"{self.backend}: feeds must be a dict of name -> array, got {type(feeds).__name__}")
        expected = [info.name for info in self.inputs]
        if sorted(feeds) != sorted(expected):
            raise EdgeGRUError(f"{self.backend}: expected inputs {expected}, got {sorted(feeds)}")
        for info in self.inputs:
            value = feeds[info.name]
            if not isinstance(value, np.ndarray):
                raise EdgeGRUError(f"{self.backend}: input {info.name!r} must be a numpy array of dtype "
                                   f"{info.dtype}, got {type(value).__name__}")
            if value.dtype != info.dtype:
                raise EdgeGRUError(f"{self.backend}: input {info.name!r} expected dtype {info.dtype}, "
                                   f"got {value.dtype}")
            if tuple(value.shape) != tuple(info.shape):
                raise EdgeGRUError(f"{self.backend}: input {info.name!r} expected shape {tuple(info.shape)}, "
                                   f"got {tuple(value.shape)}")

    def _run(self, arrays: list) -> list:  # pragma: no cover - abstract
        raise NotImplementedError


class _InterpreterRunner(Runner):
    """LiteRT or tflite-runtime: `tf.lite.Interpreter`-style API."""

    def __init__(self, backend: str, interpreter):
        self.backend = backend
        self._interpreter = interpreter
        self._in, self._out = interpreter.get_input_details(), interpreter.get_output_details()
        self.inputs = [self._info(d) for d in self._in]
        self.outputs = [self._info(d) for d in self._out]

    @staticmethod
    def _info(d) -> TensorInfo:
        scale, zero_point = d.get("quantization", (0.0, 0))
        return TensorInfo(str(d["name"]), tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]),
                          float(scale), int(zero_point))

    def _invoke(self, arrays):
        for d, array in zip(self._in, arrays):
            self._interpreter.set_tensor(d["index"], array)
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(d["index"]) for d in self._out]

    def _run(self, arrays):
        result, error, stderr = _call_capturing(lambda: self._invoke(arrays))
        if error is not None:
            raise _fail(f"{self.backend}: invoke failed", error, stderr) from error
        return result


class _TflmRunner(Runner):
    """TFLite Micro; `arena_size` is the tensor arena in bytes it runs with."""

    def __init__(self, interpreter, model_bytes: bytes, model, arena_size: int):
        self.backend = "tflm"
        self.arena_size = arena_size
        self._interpreter = interpreter
        self._model_bytes = model_bytes  # the interpreter may point into these bytes: keep them alive
        sg = model.subgraphs[0]
        self.inputs = _tensor_infos(model, list(sg.inputs))
        self.outputs = _tensor_infos(model, list(sg.outputs))

    def _invoke(self, arrays):
        for k, array in enumerate(arrays):
            self._interpreter.set_input(array, k)
        self._interpreter.invoke()
        return [self._interpreter.get_output(k) for k in range(len(self.outputs))]

    def _run(self, arrays):
        result, error, stderr = _call_capturing(lambda: self._invoke(arrays))
        if error is not None:
            raise _fail("tflm: invoke failed", error, stderr, who="TFLM") from error
        return result


class _Arm64LiteRTRunner(Runner):
    """LiteRT's aarch64 build in a child process under QEMU user mode (`litert_child.py`), kept running:
    each `run` is one request on its stdin and one answer on its stdout."""

    def __init__(self, model_bytes: bytes):
        self.backend = "litert-arm64"
        qemu, python = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64"), ARM64_ROOT / "usr/bin/python3"
        if qemu is None or not python.is_file() or not (ARM64_ROOT / "site" / "ai_edge_litert").is_dir():
            raise EdgeGRUError(f"backend 'litert-arm64' needs QEMU user mode and an arm64 Python with ai-edge-litert in "
                               f"{ARM64_ROOT}; run `make litert-arm64`")
        self._stderr = tempfile.TemporaryFile()
        self._child = subprocess.Popen(
            [qemu, "-cpu", ARM64_CPU, "-L", str(ARM64_ROOT), str(python), str(_LITERT_CHILD)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env={**os.environ, "PYTHONPATH": str(ARM64_ROOT / "site"), "OMP_NUM_THREADS": "1"})
        self._send(struct.pack("<Q", len(model_bytes)) + model_bytes)
        header = self._child.stdout.readline()
        if not header:
            raise self._died("cannot load the model")
        model = _parse_model(model_bytes)
        graph = model.subgraphs[0]
        self.inputs, self.outputs = _tensor_infos(model, list(graph.inputs)), _tensor_infos(model, list(graph.outputs))
        described = json.loads(header)
        for key, infos in (("inputs", self.inputs), ("outputs", self.outputs)):
            if described[key] != [[i.name, list(i.shape), i.dtype.name] for i in infos]:
                raise self._died(f"its {key} {described[key]} are not the model's")
        self._output_bytes = [int(np.prod(i.shape)) * i.dtype.itemsize for i in self.outputs]

    def _send(self, data: bytes) -> None:
        try:
            self._child.stdin.write(data)
            self._child.stdin.flush()
        except BrokenPipeError:
            raise self._died("the child ended") from None

    def _died(self, what: str) -> EdgeGRUError:
        self._child.kill()
        self._child.wait()
        self._stderr.seek(0)
        return EdgeGRUError(f"litert-arm64: {what}; it says: {_reason(self._stderr.read().decode(errors='replace'))}")

    def _run(self, arrays):
        self._send(b"".join(array.tobytes() for array in arrays))
        results = []
        for info, size in zip(self.outputs, self._output_bytes):
            data = self._child.stdout.read(size)
            if len(data) != size:
                raise self._died("invoke failed")
            results.append(np.frombuffer(data, dtype=info.dtype).reshape(info.shape))
        return results

    def __del__(self):
        child = getattr(self, "_child", None)
        if child is not None and child.poll() is None:
            child.stdin.close()
            child.wait(timeout=30)


# --- loading ----------------------------------------------------------------------------------


def _import_interpreter(backend: str):
    try:
        if backend == "tflite-runtime":
            from tflite_runtime import interpreter
        else:
            from ai_edge_litert import interpreter
    except ImportError as exc:
        package = "tflite-runtime" if backend == "tflite-runtime" else "ai-edge-litert"
        raise EdgeGRUError(f"backend {backend!r} needs `pip install {package}` ({exc})") from exc
    return interpreter


def _load_interpreter(backend: str, model_bytes: bytes) -> Runner:
    module = _import_interpreter(backend)
    kwargs = {"model_content": model_bytes, "num_threads": 1}
    if backend != "litert":
        kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_REF

    def make():
        interpreter = module.Interpreter(**kwargs)
        interpreter.allocate_tensors()
        return interpreter

    interpreter, error, stderr = _call_capturing(make)
    if error is not None:
        raise _fail(f"{backend}: cannot load the model", error, stderr) from error
    return _InterpreterRunner(backend, interpreter)


def _tflm_auto_arena(model_bytes: bytes, model) -> int:
    """8x (model + twice the non-constant tensor bytes), a power of two, at least 64 KiB: host memory
    is cheap, and a generous arena keeps clear of TFLM's crashes on a nearly-large-enough one."""
    activations = 0
    for t in model.subgraphs[0].tensors:
        if model.buffers[t.buffer].data is None:
            shape = t.shape if t.shape is not None else []
            activations += _np_dtype(t.type).itemsize * int(np.prod(shape, dtype=np.int64))
    estimate = 8 * (len(model_bytes) + 2 * activations)
    return min(max(1 << (estimate - 1).bit_length(), _TFLM_AUTO_MIN_ARENA), TFLM_MAX_ARENA)


def _tflm_crash_signal(model_bytes: bytes, arena: int) -> int:
    """The signal that kills TFLM allocating this model in a child process; 0 if none does."""
    try:
        child = subprocess.run([sys.executable, "-c", _TFLM_PROBE, str(arena)], input=model_bytes,
                               capture_output=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        raise EdgeGRUError(f"tflm: allocating the model in a {arena}-byte arena hangs") from exc
    return -child.returncode if child.returncode < 0 else 0


def _load_tflm(model_bytes: bytes, model, arena_size: int | None) -> Runner:
    """Exactly `arena_size` bytes, or a generous estimate grown 4x while TFLM reports no memory."""
    try:
        from tflite_micro.python.tflite_micro import runtime as tflm
    except ImportError as exc:
        raise EdgeGRUError(f"backend 'tflm' needs `pip install tflite-micro` ({exc})") from exc
    if arena_size is not None:
        if not TFLM_MIN_ARENA <= arena_size <= TFLM_MAX_ARENA:
            raise EdgeGRUError(f"tflm: arena size {arena_size} bytes is outside [{TFLM_MIN_ARENA}, "
                               f"{TFLM_MAX_ARENA}] (TFLM crashes on arenas under about 464 bytes)")
        signal = _tflm_crash_signal(model_bytes, arena_size)
        if signal:
            raise EdgeGRUError(f"tflm: cannot load the model: TFLM crashes (signal {signal}) allocating it in "
                               f"a {arena_size}-byte arena, which is too small; give it more")
    arena = arena_size or _tflm_auto_arena(model_bytes, model)
    while True:
        interpreter, error, stderr = _call_capturing(
            lambda: tflm.Interpreter.from_bytes(model_bytes, arena_size=arena))
        if error is None:
            return _TflmRunner(interpreter, model_bytes, model, arena)
        out_of_memory = _TFLM_OUT_OF_MEMORY.search(stderr) is not None
        if arena_size is not None or not out_of_memory or arena >= TFLM_MAX_ARENA:
            break
        arena = min(4 * arena, TFLM_MAX_ARENA)
    hint = f" (arena {arena} bytes too small)" if out_of_memory else ""
    raise _fail(f"tflm: cannot load the model{hint}", error, stderr, who="TFLM") from error


def load_runner(backend: str, model_bytes: bytes, *, tflm_arena_size: int | None = None) -> Runner:
    """Validate `model_bytes` and return a Runner for `backend` (one of BACKENDS).

    `tflm_arena_size` (bytes, "tflm" only): use exactly this arena instead of a generous one grown
    until the model allocates; it is tried in a child process first, since TFLM may crash on it.
    """
    if backend not in BACKENDS:
        raise EdgeGRUError(f"unknown TFLite backend {backend!r}; known backends: {', '.join(BACKENDS)}")
    check_tflite_bytes(model_bytes)
    model_bytes = bytes(model_bytes)
    if backend == "tflm":
        return _load_tflm(model_bytes, _parse_model(model_bytes), tflm_arena_size)
    if backend == "litert-arm64":
        return _Arm64LiteRTRunner(model_bytes)
    return _load_interpreter(backend, model_bytes)
