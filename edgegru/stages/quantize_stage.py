"""`edgegru quantize`: calibrate, quantize, measure against float, write `runs/NAME/quant/<scheme>/`.

Reused, not redone, when `quant.json` records the same `model.pt`, calibration, rounding and weight
granularity, and the artifact is the one it wrote (`force=True` quantizes again).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgegru.artifact import save_artifact
from edgegru.atomic import write_json_atomic
from edgegru.calibrate import observe
from edgegru.checkpoint import load_checkpoint
from edgegru.data import load_dataset
from edgegru.dynamic_baseline import dynamic_int8_accuracy
from edgegru.golden import golden_predict
from edgegru.quantize import quantize_model
from edgegru.tensor_quant import DEFAULT_WEIGHTS
from edgegru.stages.run_layout import RunLayout, artifact_digest, file_digest, read_json
from edgegru.state_error import state_error_lsb
from edgegru.train import accuracy


def finished_quantization(layout: RunLayout, scheme: str, calibration: str, rounding: str,
                          weights: str = DEFAULT_WEIGHTS) -> dict | None:
    metrics = read_json(layout.quant_json(scheme))
    if metrics is None or not layout.checkpoint.is_file():
        return None
    try:
        artifact = artifact_digest(layout, scheme)
    except Exception:  # noqa: BLE001 - a missing artifact means: quantize again
        return None
    same = (metrics.get("calibration") == calibration and metrics.get("rounding") == rounding
            and metrics.get("weights", DEFAULT_WEIGHTS) == weights
            and metrics.get("checkpoint_sha256") == file_digest(layout.checkpoint)
            and metrics.get("artifact_sha256") == artifact)
    return metrics if same else None


def quantize_run(run_dir: Path, scheme: str, calibration: str = "minmax", rounding: str = "double",
                 force: bool = False, weights: str = DEFAULT_WEIGHTS) -> dict:
    """Quantize the model in `run_dir` and write `quant/<scheme>/` (artifact + quant.json)."""
    layout = RunLayout(Path(run_dir))
    if not force and (metrics := finished_quantization(layout, scheme, calibration, rounding, weights)) is not None:
        return {"weights": DEFAULT_WEIGHTS, **metrics, "reused": True}
    start = time.perf_counter()
    checkpoint = load_checkpoint(layout.root)
    dataset = load_dataset(checkpoint.dataset)
    observations = observe(checkpoint.model, dataset.train, checkpoint.normalization)
    qmodel = quantize_model(checkpoint, observations, scheme, calibration, weights)
    test = dataset.test

    def accuracies(split) -> dict:
        return {"float_accuracy": accuracy(checkpoint.model, split, checkpoint.normalization),
                "quant_accuracy": float(np.mean(golden_predict(qmodel, split, rounding) == split.y))}

    metrics = {
        "dataset": dataset.name,
        "scheme": scheme,
        "calibration": calibration,
        "rounding": rounding,
        "weights": weights,
        "variant": qmodel.config["variant"],
        "hidden": qmodel.config["hidden"],
        "layers": qmodel.config["layers"],
        **accuracies(test),
        "dynamic_int8_accuracy": dynamic_int8_accuracy(checkpoint, test),
        "weight_bytes": qmodel.weight_bytes(),
        "float_weight_bytes": 4 * sum(p.numel() for p in checkpoint.model.parameters()),
        "max_accumulator_bits": qmodel.meta["max_accumulator_bits"],
        "state_error_lsb": state_error_lsb(checkpoint.model, qmodel, test, rounding),
    }
    metrics["accuracy_drop_pp"] = round(100 * (metrics["float_accuracy"] - metrics["quant_accuracy"]), 3)
    if dataset.extra_tests:  # more held-out splits (keyword spotting: another engine's voices, a real voice)
        metrics["extra_tests"] = {name: {"sequences": len(split), **accuracies(split)}
                                  for name, split in dataset.extra_tests.items()}
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    save_artifact(layout.quant_dir(scheme), qmodel)
    metrics["checkpoint_sha256"] = file_digest(layout.checkpoint)
    metrics["artifact_sha256"] = artifact_digest(layout, scheme)
    write_json_atomic(layout.quant_json(scheme), metrics)
    return {**metrics, "reused": False}
