"""The trained float network as a standard ONNX model built on the ONNX `GRU` operator.

Inputs: `x` float32 [B, T, F] (normalized features), `sequence_lens` int32 [B], `initial_h` float32
[L, B, H].  Outputs: `logits` float32 [B, C] (from the state at each sequence's true last step) and
`Y_h` float32 [L, B, H].  Batch and time are dynamic, so the same model runs whole sequences or one
step at a time (T = 1, feeding `Y_h` back as `initial_h`).  `linear_before_reset` is 1 for
`reset_after` and 0 for `reset_before`.  ONNX orders the gates z, r, h; ours (PyTorch) are r, z, n.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgegru.checkpoint import Checkpoint

OPSET = 17
PRODUCER = "edgegru"


def _onnx_gate_order(matrix: np.ndarray, hidden: int) -> np.ndarray:
    r, z, n = np.split(matrix, 3, axis=0)
    return np.concatenate([z, r, n], axis=0)


def float_onnx_model(checkpoint: Checkpoint) -> onnx.ModelProto:
    config = checkpoint.model.config
    H, L = config.hidden, config.layers
    initializers, nodes = [], []
    nodes.append(helper.make_node("Transpose", ["x"], ["x_tbf"], perm=[1, 0, 2]))
    if L == 1:
        layer_h = ["initial_h"]
    else:
        initializers.append(numpy_helper.from_array(np.ones(L, np.int64), "split_ones"))
        layer_h = [f"initial_h_{k}" for k in range(L)]
        nodes.append(helper.make_node("Split", ["initial_h", "split_ones"], layer_h, axis=0))
    source, finals = "x_tbf", []
    for k, gru in enumerate(checkpoint.model.grus):
        w = _onnx_gate_order(gru.weight_ih.detach().numpy(), H)[None]
        r = _onnx_gate_order(gru.weight_hh.detach().numpy(), H)[None]
        b = np.concatenate([_onnx_gate_order(gru.bias_ih.detach().numpy(), H),
                            _onnx_gate_order(gru.bias_hh.detach().numpy(), H)])[None]
        initializers += [numpy_helper.from_array(a.astype(np.float32), f"gru{k}_{n}") for a, n in ((w, "W"), (r, "R"), (b, "B"))]
        nodes.append(helper.make_node(
            "GRU", [source, f"gru{k}_W", f"gru{k}_R", f"gru{k}_B", "sequence_lens", layer_h[k]],
            [f"gru{k}_Y", f"gru{k}_Y_h"], hidden_size=H,
            linear_before_reset=1 if config.variant == "reset_after" else 0, name=f"gru{k}"))
        finals.append(f"gru{k}_Y_h")
        if k + 1 < L:
            initializers.append(numpy_helper.from_array(np.array([1], np.int64), f"gru{k}_axis"))
            nodes.append(helper.make_node("Squeeze", [f"gru{k}_Y", f"gru{k}_axis"], [f"gru{k}_Y_tbh"]))
            source = f"gru{k}_Y_tbh"
    if L == 1:
        nodes.append(helper.make_node("Identity", [finals[0]], ["Y_h"]))
    else:
        nodes.append(helper.make_node("Concat", finals, ["Y_h"], axis=0))
    initializers.append(numpy_helper.from_array(np.array([0], np.int64), "head_axis"))
    nodes.append(helper.make_node("Squeeze", [finals[-1], "head_axis"], ["last_h"]))
    initializers += [numpy_helper.from_array(checkpoint.model.head.weight.detach().numpy(), "head_W"),
                     numpy_helper.from_array(checkpoint.model.head.bias.detach().numpy(), "head_B")]
    nodes.append(helper.make_node("Gemm", ["last_h", "head_W", "head_B"], ["logits"], transB=1))
    graph = helper.make_graph(
        nodes, "edgegru_float",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "time", config.input_size]),
                helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["batch"]),
                helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, [L, "batch", H])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", config.num_classes]),
                 helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [L, "batch", H])],
        initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER)
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model
