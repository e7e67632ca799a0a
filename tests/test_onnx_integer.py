"""The integer ONNX step: bit-exact with the golden model in onnxruntime and the reference evaluator."""


import numpy as np
import pytest

from edgegru.artifact import save_artifact
from edgegru.errors import EdgeGRUError
from export.onnx_integer import quantized_step_onnx
from export.onnx_runtimes import load_onnx_runner
from tests.test_tflite_export import verify
from tests.conftest import in_a_fresh_interpreter


@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_onnxruntime_and_reference_are_bit_exact(quantized, japanese_vowels, scheme):
    report = verify(quantized[scheme], ["onnxruntime"], japanese_vowels.test, max_sequences=80)
    assert report["backends"]["onnxruntime"]["mismatches"] == 0
    assert report["backends"]["onnxruntime"]["accuracy"] == report["golden_accuracy"]["double"]
    report = verify(quantized[scheme], ["onnx-reference"], japanese_vowels.test, max_sequences=8)
    assert report["backends"]["onnx-reference"]["mismatches"] == 0


def test_fully_connected_runs_on_an_integer_kernel(quantized):
    ops = {node.op_type for node in quantized_step_onnx(quantized["int8"]).graph.node}
    assert "MatMulInteger" in ops and not ops & {"QuantizeLinear", "DequantizeLinear", "MatMul"}


@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_same_artifact_gives_identical_bytes_in_a_fresh_interpreter(tmp_path, quantized, scheme):
    save_artifact(tmp_path, quantized[scheme])
    code = ("import sys; from edgegru.artifact import load_artifact; from export.onnx_integer import "
            "quantized_step_onnx; sys.stdout.buffer.write(quantized_step_onnx(load_artifact(sys.argv[1]))"
            ".SerializeToString())")
    assert in_a_fresh_interpreter(code, str(tmp_path)) == quantized_step_onnx(quantized[scheme]).SerializeToString()


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n", b"\x08\x07garbage"])
def test_corrupt_or_foreign_onnx_is_refused(content):
    with pytest.raises(EdgeGRUError, match="ONNX"):
        load_onnx_runner("onnxruntime", content)


def test_mismatched_input_names_and_shapes_are_refused(quantized):
    run = load_onnx_runner("onnxruntime", quantized_step_onnx(quantized["int8"]).SerializeToString())
    with pytest.raises(EdgeGRUError, match="expected inputs"):
        run({"features": np.zeros((1, 12), np.int8), "l0.h": np.zeros((1, 16), np.int8)})
    with pytest.raises(EdgeGRUError, match=r"must have shape \['\?', 12\]"):
        run({"x": np.zeros((1, 11), np.int8), "l0.h": np.zeros((1, 16), np.int8)})
    with pytest.raises(EdgeGRUError, match="must be a int8 array"):
        run({"x": np.zeros((1, 12), np.float32), "l0.h": np.zeros((1, 16), np.int8)})
