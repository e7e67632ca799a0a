"""The golden model: the quantized GRU step in integer-only numpy, exactly as an integer runtime computes it.

It evaluates the step graph (`step_graph.step_ops`) with the TFLite integer kernels of
`integer_ops`, vectorized over a batch.  No float is used inside a step; floats appear only when raw
features are quantized at the input boundary (`quantize_features`).

`rounding` names the runtime whose arithmetic the step reproduces, a profile of `ROUNDING_PROFILES`:
`double` (TFLite Micro, tflite-runtime reference kernels), `single` (LiteRT's reference kernels), or
LiteRT's default path, `litert-x86` and `litert-arm`: int8 ops in XNNPACK, int16 ops in LiteRT's
built-in optimized kernels.  The profile is applied once, when the step's plan is prepared
(`integer_kernels`); the step itself only runs the prepared kernels.
"""

from __future__ import annotations

import numpy as np

from edgegru import integer_ops
from edgegru.errors import EdgeGRUError
from edgegru.quantize import QuantizedModel
from edgegru.step_graph import run_ops
from edgegru.stream_loop import stream

# How each runtime computes, per activation type and op kind (read from the sources and measured against
# the runtimes, see docs/quantization.md):
# - `double`: TFLite Micro and tflite-runtime's reference kernels.
# - `single`: LiteRT's reference kernels, whose FULLY_CONNECTED rounds once, from a double product
#   acc * real multiplier (`float`), while ADD, SUB and MUL still round twice.
# - `litert-x86`, `litert-arm`: LiteRT's default path.  int8 ops run in XNNPACK with parameters of its
#   own (`integer_ops.prepare_xnnpack`): FULLY_CONNECTED in float32 (`fp32`), ADD/SUB integer-only
#   (`xnnpack`), MUL in float32 on x86 and in rndnu fixed point on Arm NEON, LOGISTIC/TANH tables from
#   the float32 functions.  XNNPACK takes no int16 op: those run in LiteRT's built-in optimized kernels,
#   which round like its reference kernels except ADD (`single-inputs`).  The Arm profile, written from
#   XNNPACK's sources, is checked on LiteRT's aarch64 build under QEMU (the `litert-arm64` backend).
_DOUBLE = {"fully_connected": "double", "add": "double", "sub": "double", "mul": "double"}
_SINGLE = {"fully_connected": "float", "add": "double", "sub": "double", "mul": "double"}
_XNNPACK_X86 = {"fully_connected": "fp32", "add": "xnnpack", "sub": "xnnpack", "mul": "fp32", "logistic": "xnnpack",
                "tanh": "xnnpack"}
_LITERT_OPTIMIZED_INT16 = {**_SINGLE, "add": "single-inputs"}
ROUNDING_PROFILES = {
    "double": {"int8": _DOUBLE, "int16": _DOUBLE},
    "single": {"int8": _SINGLE, "int16": _SINGLE},
    "litert-x86": {"int8": _XNNPACK_X86, "int16": _LITERT_OPTIMIZED_INT16},
    "litert-arm": {"int8": {**_XNNPACK_X86, "mul": "rndnu"}, "int16": _LITERT_OPTIMIZED_INT16},
}


def op_params(model: QuantizedModel, op, rounding: str):
    """The params op `op`'s kernel runs with under an op rounding: the artifact's, or for XNNPACK's
    arithmetic the ones XNNPACK derives from the .tflite's float32 scales when it creates the operator."""
    if rounding not in integer_ops.XNNPACK_ROUNDINGS:
        return model.op_params[op.output]
    return integer_ops.prepare_xnnpack(op.kind, rounding, [model.tensors[name] for name in op.inputs],
                                       model.tensors[op.output], model.weight_scales.get(op.weight), op.output)


class IntegerKernels(dict):
    """What `integer_kernels` returns: the run function of every op kind, `kernels[kind](op, *inputs)`
    (a dict, as `step_graph.run_ops` takes it), plus the model's whole step prepared as a plan that
    `golden_step` runs instead of `run_ops` as long as the dict holds the kernels it was made with (a
    caller may swap one in, as a test does to watch the accumulators).  The plan computes the same
    tensors; it only runs the FULLY_CONNECTEDs that read the same tensor as one."""

    def __init__(self, kernels: dict, ops: list, plan: list):
        super().__init__(kernels)
        self._made = dict(kernels)
        self._ops = ops
        self._plan = plan
        self._outputs = dict.fromkeys(op.output for op in ops)  # placeholders: the tensors keep op order

    def runs_plan_for(self, model: QuantizedModel) -> bool:
        return (model.ops is self._ops and len(self) == len(self._made)
                and all(self.get(kind) is kernel for kind, kernel in self._made.items()))

    def run_step(self, tensors: dict) -> dict:
        """`run_ops(model.ops, tensors, self)`, by the plan."""
        tensors.update(self._outputs)
        for arity, run, a, b, out in self._plan:
            if arity == 1:
                tensors[out] = run(tensors[a])
            elif arity == 2:
                tensors[out] = run(tensors[a], tensors[b])
            else:
                tensors.update(zip(out, run(tensors[a])))
        return tensors


def integer_kernels(model: QuantizedModel, rounding: str) -> IntegerKernels:
    """The run function of every op kind, `kernels[kind](op, *inputs)` (as `step_graph.run_ops` calls
    them), for this model and rounding profile.  Each op's kernel is prepared once, here
    (`integer_ops.prepare_kernel`: tables, folded offsets, fused requantization), from the model's
    params, weights and biases as they are now; it computes exactly what the op's `integer_ops.KERNELS`
    function computes.  Called once per model and rounding; `golden_step` builds it when not given."""
    if rounding not in ROUNDING_PROFILES:
        raise EdgeGRUError(f"unknown rounding '{rounding}'; choose one of {', '.join(ROUNDING_PROFILES)}")
    activation = model.scheme_spec.activation
    profile = ROUNDING_PROFILES[rounding][activation]
    prepared = {kind: {} for kind in ("fully_connected", "add", "sub", "mul", "logistic", "tanh")}

    def prepare(op):
        weights = model.weights[op.weight] if op.kind == "fully_connected" else None
        bias = model.biases[op.weight] if op.kind == "fully_connected" else None
        kernel = integer_ops.prepare_kernel(op.kind, op_params(model, op, profile.get(op.kind)), activation,
                                            profile.get(op.kind), weights, bias)
        prepared[op.kind][op.output] = kernel
        return kernel

    ops = model.ops
    plan, grouped = [], set()
    for op in ops:
        kernel = prepare(op)
        if op.kind != "fully_connected":
            plan.append((len(op.inputs), kernel, op.inputs[0], op.inputs[-1], op.output))
            continue
        if op.inputs[0] in grouped:
            continue
        group = [other for other in ops if other.kind == "fully_connected" and other.inputs[0] == op.inputs[0]]
        if len(group) == 1:
            plan.append((1, kernel, op.inputs[0], None, op.output))
            continue
        grouped.add(op.inputs[0])
        run_group = integer_ops.prepare_fully_connected_group(
            activation, [(model.weights[o.weight], model.biases[o.weight], op_params(model, o, profile["fully_connected"]))
                         for o in group], profile["fully_connected"])
        plan.append((0, run_group, op.inputs[0], None, tuple(o.output for o in group)))

    def unary(kind):
        ready = prepared[kind]

        def run(op, a):
            kernel = ready.get(op.output)
            return (kernel or prepare(op))(a)
        return run

    def binary(kind):
        ready = prepared[kind]

        def run(op, a, b):
            kernel = ready.get(op.output)
            return (kernel or prepare(op))(a, b)
        return run

    kernels = {"fully_connected": unary("fully_connected"), "add": binary("add"), "sub": binary("sub"),
               "mul": binary("mul"), "logistic": unary("logistic"), "tanh": unary("tanh")}
    return IntegerKernels(kernels, ops, plan)


def check_step_input(model: QuantizedModel, name: str, array, width: int, batch: int | None = None) -> np.ndarray:
    """Refuse anything but an integer array of the tensor's dtype and shape [B, width]."""
    dtype = np.dtype(model.tensors[name].dtype)
    array = np.asarray(array)
    if array.dtype != dtype:
        raise EdgeGRUError(f"step input '{name}' must be {dtype} (quantized), got {array.dtype}; "
                           f"quantize features with quantize_features()")
    if array.ndim != 2 or array.shape[1] != width or (batch is not None and array.shape[0] != batch):
        expected = f"[{batch if batch is not None else 'B'}, {width}]"
        raise EdgeGRUError(f"step input '{name}' must have shape {expected}, got {list(array.shape)}")
    return array


def initial_states(model: QuantizedModel, batch: int) -> list[np.ndarray]:
    """The zero state of every layer: the integer that represents 0.0 (its zero point)."""
    return [np.full((batch, model.config["hidden"]), model.tensors[h_in].zero_point, dtype=model.tensors[h_in].dtype)
            for h_in, _ in model.states]


def golden_step(model: QuantizedModel, x_q: np.ndarray, states: list[np.ndarray], rounding: str = "double",
                kernels: dict | None = None) -> tuple[np.ndarray, list[np.ndarray], dict]:
    """One step: x_q [B, F] and one state [B, H] per layer -> (logits [B, C], new states, all tensors)."""
    x_q = check_step_input(model, "x", x_q, model.config["input_size"])
    if len(states) != len(model.states):
        raise EdgeGRUError(f"expected {len(model.states)} state arrays (one per layer), got {len(states)}")
    inputs = {"x": x_q}
    for (h_in, _), state in zip(model.states, states):
        inputs[h_in] = check_step_input(model, h_in, state, model.config["hidden"], batch=len(x_q))
    kernels = kernels or integer_kernels(model, rounding)
    if isinstance(kernels, IntegerKernels) and kernels.runs_plan_for(model):
        tensors = kernels.run_step(inputs)
    else:
        tensors = run_ops(model.ops, inputs, kernels)
    return tensors["logits"], [tensors[h_out] for _, h_out in model.states], tensors


def quantize_features(model: QuantizedModel, raw: np.ndarray) -> np.ndarray:
    """Raw features (the dataset's units) -> normalized -> quantized with tensor `x`'s parameters."""
    raw = np.asarray(raw, dtype=np.float32)
    if not np.isfinite(raw).all():
        raise EdgeGRUError("features contain NaN or inf")
    return model.tensors["x"].quantize(model.normalization.apply(raw))


def golden_step_function(model: QuantizedModel, rounding: str = "double"):
    """The golden step for `stream_loop.stream`: (x_q [B, F], states) -> (every tensor of the step, new states)."""
    kernels = integer_kernels(model, rounding)

    def step(x_q, states):
        _, new_states, tensors = golden_step(model, x_q, states, rounding, kernels)
        return tensors, new_states
    return step


def run_sequences(model: QuantizedModel, x_q: np.ndarray, lengths: np.ndarray, rounding: str = "double",
                  on_step=None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Stream quantized sequences [B, T, F] step by step; each row's state stops at its true length.

    Returns the logits at each row's last step and the final states.  `on_step(t, tensors, active)`,
    if given, sees every step's tensors (for verification and error measurement).
    """
    logits = np.zeros((len(x_q), model.config["num_classes"]), dtype=model.tensors["logits"].dtype)

    def keep_logits(t, tensors, active):
        nonlocal logits
        logits = np.where(active[:, None], tensors["logits"], logits)
        if on_step is not None:
            on_step(t, tensors, active)

    states = stream(golden_step_function(model, rounding), initial_states(model, len(x_q)), x_q, lengths, keep_logits)
    return logits, states


def golden_predict(model: QuantizedModel, split, rounding: str = "double") -> np.ndarray:
    """Predicted class per sequence of a data split."""
    logits, _ = run_sequences(model, quantize_features(model, split.x), split.lengths, rounding)
    return logits.argmax(axis=1)
