"""Post-training quantization: float checkpoint + calibration -> `QuantizedModel` (integers only).

Every tensor of the step graph gets its scale and zero point here, every weight and bias its integer
form, and every op its fixed-point parameters (multipliers and shifts, from `integer_ops.prepare_*`),
once.  The golden model, the exporters and the C generator read these and compute nothing from
floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from edgegru import integer_ops
from edgegru.calibrate import Observation, choose_range
from edgegru.checkpoint import Checkpoint
from edgegru.data import Normalization
from edgegru.errors import EdgeGRUError
from edgegru.fixedpoint import quantize_multiplier
from edgegru.tensor_quant import (DEFAULT_WEIGHTS, Scheme, TensorQuant, get_scheme, quantize_bias, quantize_weight,
                                  tensor_quant_from_range, weight_scales)
from edgegru.step_graph import Op, float_weights, state_names, step_ops, tensor_widths

# Bits (sign included) every FULLY_CONNECTED accumulator must fit, in both schemes.  int8: the int32
# accumulator of the spec.  int16x8: the spec's accumulator is int64, but LiteRT's single-rounding
# requantization multiplies it by a Q31 multiplier in 64 bits, so it too must stay below 2^31.
ACCUMULATOR_BITS = 32


@dataclass
class QuantizedModel:
    scheme: str  # the scheme's name, for JSON and reports; code reads `scheme_spec`
    calibration: str
    config: dict  # input_size, hidden, num_classes, layers, variant
    tensors: dict[str, TensorQuant]  # every activation of the step graph
    weights: dict[str, np.ndarray]  # int8 [O, I] per FULLY_CONNECTED weight name
    weight_scales: dict[str, np.ndarray]  # float64 [O]
    biases: dict[str, np.ndarray]  # int32 (int8 scheme) or int64 (int16x8) [O]
    op_params: dict[str, object]  # op output name -> integer params from integer_ops.prepare_*
    normalization: Normalization
    class_names: list[str]
    meta: dict = field(default_factory=dict)

    @cached_property
    def ops(self) -> list[Op]:
        """The step graph, built once per model (it is read on every golden step)."""
        return step_ops(self.config["variant"], self.config["layers"])

    @cached_property
    def states(self) -> list[tuple[str, str]]:
        return state_names(self.config["layers"])

    @cached_property
    def scheme_spec(self) -> Scheme:
        """The scheme, resolved once from its name: what differs between int8 and int16x8."""
        return get_scheme(self.scheme)

    @cached_property
    def tensor_widths(self) -> dict[str, int]:
        """Element count of every tensor of the step graph (per batch row), from the config."""
        return tensor_widths(self.config, self.ops)

    @property
    def weight_granularity(self) -> str:
        """`per-channel` or `per-tensor` weight scales (artifacts written before the choice existed: per-channel)."""
        return self.meta.get("weights", DEFAULT_WEIGHTS)

    def weight_bytes(self) -> int:
        """Bytes of the integer parameters: int8 weights plus int32/int64 biases."""
        return sum(w.nbytes for w in self.weights.values()) + sum(b.nbytes for b in self.biases.values())


def choose_tensor_quants(ops: list[Op], observations: dict[str, Observation], scheme: Scheme,
                         calibration: str, layers: int, normalization: Normalization) -> dict[str, TensorQuant]:
    levels = scheme.qmax - scheme.qmin + 1

    def from_observation(observation):
        return tensor_quant_from_range(*choose_range(observation, calibration, levels, scheme.symmetric), scheme)

    quants = {"x": code_input_quant(normalization, scheme) if normalization.codes else from_observation(observations["x"])}
    for h_in, h_out in state_names(layers):
        both = observations[h_in], observations[h_out]
        merged = Observation(min(o.minimum for o in both), max(o.maximum for o in both),
                             np.concatenate([o.samples for o in both]))
        quants[h_in] = quants[h_out] = from_observation(merged)
    for op in ops:
        if op.output in quants:
            continue
        fixed = scheme.fixed_output(op.kind)
        if fixed is not None:
            quants[op.output] = TensorQuant(*fixed, scheme.activation)
        else:
            quants[op.output] = from_observation(observations[op.output])
        if op.kind == "mul":
            s1, s2 = (quants[name].scale for name in op.inputs)
            out = quants[op.output]
            quants[op.output] = TensorQuant(mul_output_scale(s1, s2, out.scale), out.zero_point, out.dtype)
    return quants


def code_input_quant(normalization: Normalization, scheme: Scheme) -> TensorQuant:
    """The input of a model fed int8 codes (`Normalization.codes`): zero point 0 and scale 1/std, so that
    quantizing the normalized code c/std gives c back exactly (std is a power of two); an int16 input
    holds c * 256 at scale 1/(256 std), exact too, and keeps every input-times-weight scale small
    beside its output's, as TFLite's int16 FULLY_CONNECTED requires of per-channel weights."""
    std = float(normalization.std[0])
    if not (normalization.std == std).all() or std <= 0 or math.frexp(std)[0] != 0.5 or normalization.mean.any():
        raise EdgeGRUError("integer-code features need a zero mean and one power-of-two std for every feature")
    widening = 256 if scheme.activation == "int16" else 1
    return TensorQuant(1.0 / (std * widening), 0, scheme.activation)


def _nearest_agreeing_float32(value: float, agrees, what: str) -> float:
    """The float32 nearest `value` (searching outward, about one ulp per step) for which `agrees(candidate)`."""
    for k in range(200_000):
        offset = (k + 1) // 2 * (1 if k % 2 else -1)  # 0, +1, -1, +2, -2, ...
        candidate = np.float32(value * (1.0 + offset * 2.0**-23))
        if agrees(candidate):
            return float(candidate)
    raise EdgeGRUError(f"no float32 {what} near {value} gives one multiplier in every runtime")


def _same_multiplier(s1, s2, s_out, float32_quotient: bool) -> bool:
    """Whether s1 * s2 / s_out gives one fixed-point multiplier computed in double (TFLite Micro) and with
    the product s1 * s2 in float32, the quotient too if `float32_quotient` (tflite-runtime: its int16 MUL
    divides in float32, its per-tensor FULLY_CONNECTED in double)."""
    a, b, c = np.float32(s1), np.float32(s2), np.float32(s_out)
    quotient = np.float32(a * b) / c if float32_quotient else float(np.float32(a * b)) / float(c)
    return quantize_multiplier(float(a) * float(b) / float(c)) == quantize_multiplier(float(quotient))


def mul_output_scale(s1: float, s2: float, s_out: float) -> float:
    """The float32 scale nearest `s_out` for which s1 * s2 / s_out gives the same fixed-point multiplier
    whether computed in double (TFLite Micro) or in float32 (tflite-runtime's int16 MUL).

    Moving the scale by a few float32 ulps (relative 1e-7 each) costs nothing in accuracy and makes
    every runtime compute the same MUL; without it the two runtimes differ by 1 LSB now and then.
    """
    return _nearest_agreeing_float32(s_out, lambda c: _same_multiplier(s1, s2, c, True), "MUL output scale")


def per_tensor_weight_scale(s_in: float, s_w: float, s_out: float) -> float:
    """The float32 weight scale nearest `s_w` for which a per-tensor FULLY_CONNECTED's s_in * s_w / s_out gives
    one multiplier in every runtime (tflite-runtime takes the product s_in * s_w in float32 there).

    The output scale cannot do it (it moves both products alike); the weight scale changes the product
    itself, and about one candidate in a few hundred makes it (nearly) exact in float32: a relative
    move of about 1e-5 at most, far below the weights' own rounding."""
    return _nearest_agreeing_float32(s_w, lambda w: _same_multiplier(s_in, w, s_out, False), "per-tensor weight scale")


def accumulator_bound(weight: np.ndarray, bias: np.ndarray, input_quant: TensorQuant) -> int:
    """Largest |Σ_i (q_i - zp) W[c, i] + bias[c]| over all inputs the input dtype can hold."""
    info = np.iinfo(input_quant.dtype)
    reach = max(abs(int(info.min) - input_quant.zero_point), abs(int(info.max) - input_quant.zero_point))
    per_channel = reach * np.abs(weight.astype(np.int64)).sum(axis=1) + np.abs(bias.astype(object)).astype(object)
    return int(max(per_channel))


def quantize_model(checkpoint: Checkpoint, observations: dict[str, Observation], scheme_name: str,
                   calibration: str = "minmax", weights: str = DEFAULT_WEIGHTS) -> QuantizedModel:
    """Quantize `checkpoint` with ranges from `observations` (see `calibrate.observe`); `weights` is the
    weight scales' granularity (`tensor_quant.WEIGHT_GRANULARITIES`), kept in `meta["weights"]`."""
    scheme = get_scheme(scheme_name)
    config = checkpoint.model.config.as_dict()
    ops = step_ops(config["variant"], config["layers"])
    quants = choose_tensor_quants(ops, observations, scheme, calibration, config["layers"], checkpoint.normalization)
    floats = float_weights(checkpoint.model)
    int_weights, scales, biases, op_params = {}, {}, {}, {}
    largest_bound = 0
    for op in ops:
        inputs = [quants[name] for name in op.inputs]
        out = quants[op.output]
        if op.kind == "fully_connected":
            w, b = floats[op.weight]
            scales[op.weight] = weight_scales(w, weights)
            if weights == "per-tensor":
                scales[op.weight][:] = per_tensor_weight_scale(inputs[0].scale, scales[op.weight][0], out.scale)
            int_weights[op.weight] = quantize_weight(w, scales[op.weight])
            biases[op.weight] = quantize_bias(b, inputs[0].scale, scales[op.weight], scheme.bias)
            bound = accumulator_bound(int_weights[op.weight], biases[op.weight], inputs[0])
            largest_bound = max(largest_bound, bound)
            if bound >= 2 ** (ACCUMULATOR_BITS - 1):
                raise EdgeGRUError(
                    f"{op.output}: the accumulator can reach {bound}, beyond {ACCUMULATOR_BITS} bits; "
                    f"this model cannot be quantized safely with scheme {scheme.name} (retrain with weight decay "
                    f"or a smaller input range)")
            op_params[op.output] = integer_ops.prepare_fully_connected(
                inputs[0], scales[op.weight], out, scheme)
        elif op.kind in ("add", "sub"):
            op_params[op.output] = integer_ops.prepare_add(inputs[0], inputs[1], out, scheme)
        elif op.kind == "mul":
            op_params[op.output] = integer_ops.prepare_mul(inputs[0], inputs[1], out, scheme)
        elif op.kind == "logistic":
            op_params[op.output] = integer_ops.prepare_logistic(inputs[0], out, scheme)
        elif op.kind == "tanh":
            op_params[op.output] = integer_ops.prepare_tanh(inputs[0], out, scheme)
    return QuantizedModel(
        scheme=scheme.name, calibration=calibration, config=config, tensors=quants, weights=int_weights,
        weight_scales=scales, biases=biases, op_params=op_params,
        normalization=checkpoint.normalization, class_names=list(checkpoint.class_names),
        meta={"dataset": checkpoint.dataset, "max_accumulator_bits": int(largest_bound).bit_length() + 1,
              "weights": weights},
    )
