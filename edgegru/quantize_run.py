"""`edgegru quantize`: calibrate, quantize, measure against float, write `runs/NAME/quant/<scheme>/`."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgegru.artifact import artifact_dir, save_artifact
from edgegru.atomic import write_json_atomic
from edgegru.calibrate import float_kernels, observe
from edgegru.checkpoint import load_checkpoint
from edgegru.data import Split, load_dataset
from edgegru.dynamic_baseline import dynamic_int8_accuracy
from edgegru.golden import golden_predict, golden_step, initial_states, integer_kernels, quantize_features
from edgegru.quantize import QuantizedModel, quantize_model
from edgegru.step_graph import float_weights, run_ops
from edgegru.train import accuracy


def state_error_lsb(model, qmodel: QuantizedModel, split: Split, rounding: str, max_sequences: int = 128) -> dict:
    """Per-step error of the integer state against the float state (each fed back on its own), in LSB.

    The float model runs the same step graph in float64; the error of layer K at step t is
    |s_h * (h_q - zp_h) - h_float| / s_h over the valid steps of up to `max_sequences` test sequences.
    """
    rows = slice(0, min(len(split), max_sequences))
    x, lengths = split.x[rows], split.lengths[rows]
    x_q = quantize_features(qmodel, x)
    x_float = qmodel.normalization.apply(x).astype(np.float64)
    ops, kernels_f = qmodel.ops, float_kernels(float_weights(model))
    kernels_q = integer_kernels(qmodel, rounding)
    states_q = initial_states(qmodel, len(x))
    states_f = [np.zeros(s.shape) for s in states_q]
    errors = [[] for _ in states_q]
    for t in range(int(lengths.max())):
        active = t < lengths
        _, new_q, _ = golden_step(qmodel, x_q[:, t], states_q, rounding, kernels_q)
        tensors_f = run_ops(ops, {"x": x_float[:, t], **{h: s for (h, _), s in zip(qmodel.states, states_f)}}, kernels_f)
        new_f = [tensors_f[h_out] for _, h_out in qmodel.states]
        states_q = [np.where(active[:, None], n, o) for n, o in zip(new_q, states_q)]
        states_f = [np.where(active[:, None], n, o) for n, o in zip(new_f, states_f)]
        for k, ((h_in, _), q, f) in enumerate(zip(qmodel.states, states_q, states_f)):
            quant = qmodel.tensors[h_in]
            errors[k].append(np.abs(quant.dequantize(q) - f)[active] / quant.scale)
    per_layer = [np.concatenate(e).ravel() for e in errors]
    return {
        "mean": [round(float(e.mean()), 3) for e in per_layer],
        "p99": [round(float(np.percentile(e, 99)), 3) for e in per_layer],
        "max": [round(float(e.max()), 3) for e in per_layer],
    }


def quantize_run(run_dir: Path, scheme: str, calibration: str = "minmax", rounding: str = "double") -> dict:
    """Quantize the model in `run_dir` and write `quant/<scheme>/` (artifact + quant.json)."""
    run_dir = Path(run_dir)
    start = time.perf_counter()
    checkpoint = load_checkpoint(run_dir)
    dataset = load_dataset(checkpoint.dataset)
    observations = observe(checkpoint.model, dataset.train, checkpoint.normalization)
    qmodel = quantize_model(checkpoint, observations, scheme, calibration)
    test = dataset.test
    metrics = {
        "dataset": dataset.name,
        "scheme": scheme,
        "calibration": calibration,
        "rounding": rounding,
        "variant": qmodel.config["variant"],
        "hidden": qmodel.config["hidden"],
        "layers": qmodel.config["layers"],
        "float_accuracy": accuracy(checkpoint.model, test, checkpoint.normalization),
        "quant_accuracy": float(np.mean(golden_predict(qmodel, test, rounding) == test.y)),
        "dynamic_int8_accuracy": dynamic_int8_accuracy(checkpoint, test),
        "weight_bytes": qmodel.weight_bytes(),
        "float_weight_bytes": 4 * sum(p.numel() for p in checkpoint.model.parameters()),
        "max_accumulator_bits": qmodel.meta["max_accumulator_bits"],
        "state_error_lsb": state_error_lsb(checkpoint.model, qmodel, test, rounding),
    }
    metrics["accuracy_drop_pp"] = round(100 * (metrics["float_accuracy"] - metrics["quant_accuracy"]), 3)
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    out = artifact_dir(run_dir, scheme)
    save_artifact(out, qmodel)
    write_json_atomic(out / "quant.json", metrics)
    return metrics
