"""The quantized GRU as a one-time-step TFLite model: a transcription of `step_graph.step_ops`.

Inputs `x` [1, F] and every layer's state `lK.h` [1, H]; outputs every `lK.h_new` [1, H] (feed it back
as `lK.h` next step) and `logits` [1, C].  No WHILE loop, no TensorList: only FULLY_CONNECTED, ADD, SUB,
MUL, LOGISTIC and TANH, which LiteRT, tflite-runtime and TFLite Micro all run.  In `int8` every tensor
is integer; `int16x8` has int16 activations, int8 weights and int64 biases.  The float32 step model
of the trained network is the same graph with float tensors.
"""

from __future__ import annotations

import numpy as np

from edgegru.quantize import QuantizedModel
from edgegru.step_graph import float_weights, state_names, step_ops, tensor_widths
from export.tflite_builder import GraphBuilder


def _graph_inputs(config: dict) -> list[str]:
    return ["x"] + [h_in for h_in, _ in state_names(config["layers"])]


def _io_order(config: dict, index: dict) -> tuple[list[int], list[int]]:
    states = state_names(config["layers"])
    return [index["x"]] + [index[h] for h, _ in states], [index[h] for _, h in states] + [index["logits"]]


def quantized_step_tflite(model: QuantizedModel) -> bytes:
    """The integer step model; tensor names are the graph's tensor names."""
    config = model.config
    builder = GraphBuilder(f"edgegru {model.scheme} {config['variant']} GRU step, {config['layers']} layer(s)")
    index = {}
    widths = model.tensor_widths

    def activation(name):
        quant = model.tensors[name]
        index[name] = builder.tensor(name, [1, widths[name]], quant.dtype, scale=quant.scale,
                                     zero_point=quant.zero_point)

    for name in _graph_inputs(config):
        activation(name)
    for op in model.ops:
        activation(op.output)
        inputs = [index[name] for name in op.inputs]
        if op.kind == "fully_connected":
            weight, weight_scales, bias = model.weights[op.weight], model.weight_scales[op.weight], model.biases[op.weight]
            scales = weight_scales.tolist() if model.weight_granularity == "per-channel" else float(weight_scales[0])
            inputs.append(builder.tensor(f"{op.weight}.weight", weight.shape, np.int8, scale=scales,
                                         zero_point=0, quantized_dimension=0, data=weight))
            # The bias gets one scale, s_in * s_w[0], and zero point 0: every runtime reads only its
            # integers (at scale s_in * s_w[c], see docs/quantization.md), but LiteRT's XNNPACK delegate
            # refuses a FULLY_CONNECTED whose bias has no quantization at all, and per-channel ones would
            # add 12 bytes per channel.
            inputs.append(builder.tensor(f"{op.weight}.bias", bias.shape, bias.dtype, data=bias,
                                         scale=float(np.float32(model.tensors[op.inputs[0]].scale * weight_scales[0])),
                                         zero_point=0))
        builder.op(op.kind, inputs, [index[op.output]])
    return builder.finish(*_io_order(config, index))


def float_step_tflite(checkpoint) -> bytes:
    """The trained float network as a float32 step model with the same inputs and outputs."""
    config = checkpoint.model.config.as_dict()
    weights = float_weights(checkpoint.model)
    builder = GraphBuilder(f"edgegru float32 {config['variant']} GRU step, {config['layers']} layer(s)")
    ops = step_ops(config["variant"], config["layers"])
    widths = tensor_widths(config, ops)
    index = {name: builder.tensor(name, [1, widths[name]], np.float32) for name in _graph_inputs(config)}
    for op in ops:
        index[op.output] = builder.tensor(op.output, [1, widths[op.output]], np.float32)
        inputs = [index[name] for name in op.inputs]
        if op.kind == "fully_connected":
            w, b = weights[op.weight]
            inputs.append(builder.tensor(f"{op.weight}.weight", w.shape, np.float32, data=w.astype(np.float32)))
            inputs.append(builder.tensor(f"{op.weight}.bias", b.shape, np.float32, data=b.astype(np.float32)))
        builder.op(op.kind, inputs, [index[op.output]])
    return builder.finish(*_io_order(config, index))


def device_sidecar(model: QuantizedModel) -> dict:
    """What a device app needs beside the .tflite: how to quantize its input and read the outputs."""
    states = state_names(model.config["layers"])
    quant = lambda name: {"scale": model.tensors[name].scale, "zero_point": model.tensors[name].zero_point,
                          "dtype": model.tensors[name].dtype}
    return {
        "scheme": model.scheme,
        "variant": model.config["variant"],
        "layers": model.config["layers"],
        "hidden": model.config["hidden"],
        "input": {"name": "x", "features": model.config["input_size"], **quant("x"),
                  "normalization": {"mean": model.normalization.mean.tolist(), "std": model.normalization.std.tolist()},
                  "recipe": "q = clamp(round(((raw - mean) / std) / scale) + zero_point)"},
        "state": [{"input": h_in, "output": h_out, "size": model.config["hidden"], **quant(h_in),
                   "reset_value": model.tensors[h_in].zero_point} for h_in, h_out in states],
        "logits": {"name": "logits", "classes": model.class_names, **quant("logits")},
    }
