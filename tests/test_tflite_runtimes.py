"""Single-op TFLite models built with our GraphBuilder, run on every runtime.

TFLM and tflite-runtime (reference kernels) must agree bit for bit on every op, int8 and 16x8;
the LiteRT backends are run too (their disagreements are measured, not asserted: see FIELD_NOTES §3).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from edgegru.errors import EdgeGRUError
from export.tflite_builder import GraphBuilder
from export.tflite_runtimes import BACKENDS, check_tflite_bytes, load_runner

OPS = ("fully_connected", "add", "sub", "mul", "logistic", "tanh")
MODES = ("int8", "16x8")
ROWS, IN, OUT = 16, 24, 12  # FC: [ROWS, IN] x [OUT, IN]^T; elementwise ops: [ROWS, IN]


def _act_range(mode):
    return (np.int8, -128, 127) if mode == "int8" else (np.int16, -32768, 32767)


def build_single_op(op: str, mode: str, seed: int = 0):
    """Return (model_bytes, feeds) for one op with seeded random scales, zero points and data."""
    rng = np.random.default_rng([seed, OPS.index(op), MODES.index(mode)])
    act, lo, hi = _act_range(mode)

    def zp():
        return int(rng.integers(-20, 21)) if mode == "int8" else 0

    def data(shape):
        return rng.integers(lo, hi + 1, size=shape).astype(act)

    b = GraphBuilder(f"single {op} {mode}")
    if op == "fully_connected":
        s_in = float(rng.uniform(0.01, 0.1)) if mode == "int8" else float(rng.uniform(1e-4, 1e-3))
        s_w = rng.uniform(0.002, 0.02, OUT)
        w = rng.integers(-127, 128, size=(OUT, IN)).astype(np.int8)
        bias_dtype = np.int32 if mode == "int8" else np.int64
        bias = rng.integers(-3000, 3001, size=OUT).astype(bias_dtype)
        x = b.tensor("x", [ROWS, IN], act, s_in, zp())
        wt = b.tensor("w", [OUT, IN], np.int8, s_w.tolist(), 0, quantized_dimension=0, data=w)
        bt = b.tensor("bias", [OUT], bias_dtype, (s_in * s_w).tolist(), 0, quantized_dimension=0, data=bias)
        # output range about 3 standard deviations of the accumulator: few values saturate
        s_out = s_in * float(s_w.mean()) * 127.0 * np.sqrt(IN)
        y = b.tensor("y", [ROWS, OUT], act, float(s_out), zp())
        b.op(op, [x, wt, bt], [y])
        return b.finish([x], [y]), {"x": data((ROWS, IN))}
    if op in ("add", "sub", "mul"):
        scale = (lambda: float(rng.uniform(0.01, 0.1))) if mode == "int8" else (lambda: float(rng.uniform(1e-4, 1e-3)))
        s_a, s_b, s_y = scale(), scale(), scale()
        if op == "mul":  # product range mapped to about 3x the output range
            s_y = hi * s_a * s_b / 3.0
        a = b.tensor("a", [ROWS, IN], act, s_a, zp())
        c = b.tensor("b", [ROWS, IN], act, s_b, zp())
        y = b.tensor("y", [ROWS, IN], act, s_y, zp())
        b.op(op, [a, c], [y])
        return b.finish([a, c], [y]), {"a": data((ROWS, IN)), "b": data((ROWS, IN))}
    # logistic / tanh
    s_in = float(rng.uniform(0.02, 0.08)) if mode == "int8" else float(rng.uniform(1e-4, 3e-4))
    x = b.tensor("x", [ROWS, IN], act, s_in, zp())
    if mode == "int8":
        s_out, zp_out = (1 / 256, -128) if op == "logistic" else (1 / 128, 0)
    else:
        s_out, zp_out = 1 / 32768, 0
    y = b.tensor("y", [ROWS, IN], act, s_out, zp_out)
    b.op(op, [x], [y])
    xs = data((ROWS, IN))
    if mode == "int8":  # cover every int8 input value
        xs = (np.arange(ROWS * IN) % 256 - 128).astype(np.int8).reshape(ROWS, IN)
    return b.finish([x], [y]), {"x": xs}


def run_all(model: bytes, feeds: dict) -> dict[str, np.ndarray]:
    out = {}
    for backend in BACKENDS:
        runner = load_runner(backend, model)
        (value,) = runner.run(feeds).values()
        out[backend] = value
    return out


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", OPS)
def test_single_op_tflm_matches_tflite_runtime(op, mode):
    model, feeds = build_single_op(op, mode)
    results = run_all(model, feeds)
    act = _act_range(mode)[0]
    for backend, value in results.items():
        assert value.dtype == act, backend
        assert value.shape == results["tflm"].shape, backend
    ref = results["tflite-runtime"]
    # not degenerate: the output is not a single saturated value
    assert len(np.unique(ref)) > 8
    mismatches = int(np.count_nonzero(results["tflm"] != ref))
    assert mismatches == 0, f"{op} {mode}: TFLM differs from tflite-runtime on {mismatches}/{ref.size} values"


def test_runner_metadata():
    model, feeds = build_single_op("add", "int8")
    for backend in BACKENDS:
        r = load_runner(backend, model)
        assert [i.name for i in r.inputs] == ["a", "b"]
        assert [o.name for o in r.outputs] == ["y"]
        assert r.inputs[0].shape == (ROWS, IN)
        assert r.inputs[0].dtype == np.int8
        assert r.inputs[0].scale > 0


# ----------------------------------------------------------------------------------------------
# Error paths
# ----------------------------------------------------------------------------------------------
def _good_model():
    return build_single_op("logistic", "int8")[0]


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (b"TFL3", "only 4 bytes"),
        (b"\x89PNG\r\n\x1a\n" + bytes(200), "TFL3"),
    ],
    ids=["empty", "tiny", "png"],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_bytes_rejected(backend, data, words):
    with pytest.raises(EdgeGRUError, match=words):
        load_runner(backend, data)


def test_truncated_model_rejected():
    model = _good_model()
    for cut in (12, 40, len(model) // 2, len(model) - 40):
        with pytest.raises(EdgeGRUError, match="not a valid TFLite model"):
            check_tflite_bytes(model[:cut])
    for backend in BACKENDS:
        with pytest.raises(EdgeGRUError, match="not a valid TFLite model"):
            load_runner(backend, model[: len(model) // 2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_wrong_feeds_rejected(backend):
    runner = load_runner(backend, _good_model())
    good = np.zeros((ROWS, IN), np.int8)
    with pytest.raises(EdgeGRUError, match=r"expected shape \(16, 24\), got \(16, 25\)"):
        runner.run({"x": np.zeros((ROWS, IN + 1), np.int8)})
    with pytest.raises(EdgeGRUError, match="expected dtype int8, got float32"):
        runner.run({"x": good.astype(np.float32)})
    with pytest.raises(EdgeGRUError, match=r"expected inputs \['x'\], got \['input'\]"):
        runner.run({"input": good})
    assert runner.run({"x": good})["y"].shape == (ROWS, IN)


def test_unknown_backend():
    with pytest.raises(EdgeGRUError, match="litert, litert-ref, tflite-runtime, tflm"):
        load_runner("tensorflow", _good_model())


def test_missing_runtime_package_names_pip_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    with pytest.raises(EdgeGRUError, match="pip install tflite-runtime"):
        load_runner("tflite-runtime", _good_model())


def test_tflm_failure_reports_c_level_reason():
    """int8 LOGISTIC with output zero point 0: TFLM rejects it, and says why only on C stderr."""
    b = GraphBuilder("bad logistic")
    x = b.tensor("x", [1, 8], np.int8, 0.05, 0)
    y = b.tensor("y", [1, 8], np.int8, 1 / 256, 0)  # must be -128
    b.op("logistic", [x], [y])
    model = b.finish([x], [y])
    with pytest.raises(EdgeGRUError) as info:
        load_runner("tflm", model)
    msg = str(info.value)
    assert "zero_point" in msg and "-128" in msg and "LOGISTIC" in msg, msg
    # fd 2 is restored afterwards
    os.write(2, b"")


# ----------------------------------------------------------------------------------------------
# Builder determinism
# ----------------------------------------------------------------------------------------------
def test_builder_is_deterministic():
    for op in OPS:
        for mode in MODES:
            assert build_single_op(op, mode)[0] == build_single_op(op, mode)[0]
    assert build_single_op("mul", "int8", seed=1)[0] != build_single_op("mul", "int8", seed=2)[0]


def test_builder_is_deterministic_across_processes():
    code = (
        "import hashlib, sys; sys.path.insert(0, 'tests'); "
        "from test_tflite_runtimes import build_single_op; "
        "print(hashlib.sha256(build_single_op('fully_connected', '16x8')[0]).hexdigest())"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=root)
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == hashlib.sha256(build_single_op("fully_connected", "16x8")[0]).hexdigest()


def test_builder_header_and_sentinel():
    model = _good_model()
    assert model[4:8] == b"TFL3"
    from tflite_micro.python.tflite_micro.runtime import schema_fb

    m = schema_fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
    assert m.version == 3
    assert m.buffers[0].data is None
    code = m.operatorCodes[0]
    assert code.builtinCode == schema_fb.BuiltinOperator.LOGISTIC
    assert code.deprecatedBuiltinCode == min(code.builtinCode, 127)
    assert code.version == 1


def test_builder_rejects_bad_calls():
    b = GraphBuilder("bad")
    x = b.tensor("x", [2, 3], np.int8, 0.1, 0)
    with pytest.raises(EdgeGRUError, match="used twice"):
        b.tensor("x", [2, 3], np.int8, 0.1, 0)
    with pytest.raises(EdgeGRUError, match="per-channel"):
        b.tensor("w", [4, 3], np.int8, [0.1, 0.2], 0, data=np.zeros((4, 3), np.int8))
    with pytest.raises(EdgeGRUError, match="unknown op kind"):
        b.op("conv", [x], [x])
    with pytest.raises(EdgeGRUError, match="out of range"):
        b.op("tanh", [x], [7])
