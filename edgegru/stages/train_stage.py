"""`edgegru train`: train a float model into a run directory, or reuse the finished one.

A run is finished when `train.json` records the same training config and the same data (its digest)
and `model.pt` is the file it wrote; then nothing is trained again (`force=True` retrains).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from edgegru.atomic import write_json_atomic
from edgegru.checkpoint import load_checkpoint, save_checkpoint
from edgegru.data import Dataset, load_dataset
from edgegru.model import count_parameters
from edgegru.stages.run_layout import RunLayout, data_digest, file_digest, read_json
from edgegru.train import RECIPE, TrainConfig, train


def finished_training(layout: RunLayout, dataset: Dataset, config: TrainConfig, digest: str) -> dict | None:
    """The recorded metrics of an identical finished run, else None."""
    metrics = read_json(layout.train_json)
    if metrics is None or not layout.checkpoint.is_file():
        return None
    same = (metrics.get("dataset") == dataset.name and metrics.get("data_sha256") == digest
            and metrics.get("recipe") == RECIPE
            and all(metrics.get(key) == value for key, value in asdict(config).items())
            and metrics.get("checkpoint_sha256") == file_digest(layout.checkpoint))
    return metrics if same else None


def train_run(dataset: Dataset | str, config: TrainConfig, out_dir: Path | None = None, progress: bool = True,
              force: bool = False) -> dict:
    """Train and write `model.pt` and `train.json` (into `out_dir`, default runs/DATASET), each atomically,
    only on success.

    `dataset` is a Dataset or a name for `load_dataset`.  Returns the metrics, with `run_dir`, and
    `reused` True when an identical finished run was found instead.
    """
    if isinstance(dataset, str):
        dataset = load_dataset(dataset)
    layout = RunLayout(Path(out_dir or f"runs/{dataset.name}"))
    digest = data_digest(dataset)
    if not force and (metrics := finished_training(layout, dataset, config, digest)) is not None:
        return {**metrics, "run_dir": str(layout.root), "reused": True}
    checkpoint, metrics = train(dataset, config, progress)
    save_checkpoint(layout.checkpoint, checkpoint)
    metrics = {**metrics, "data_sha256": digest, "checkpoint_sha256": file_digest(layout.checkpoint)}
    write_json_atomic(layout.train_json, metrics)
    return {**metrics, "run_dir": str(layout.root), "reused": False}


def train_seeds_run(dataset: Dataset | str, config: TrainConfig, seeds: int, out_dir: Path | None = None,
                    progress: bool = True, force: bool = False) -> dict:
    """Train `seeds` runs, seeds config.seed, config.seed + 1, ..., into `out_dir/seed-K/` (each reused
    when finished); returns {"runs": [metrics...], "val_accuracy"/"test_accuracy": {mean, std, min, max}}."""
    if isinstance(dataset, str):
        dataset = load_dataset(dataset)
    root = Path(out_dir or f"runs/{dataset.name}")
    runs = [train_run(dataset, replace(config, seed=config.seed + k), root / f"seed-{config.seed + k}", progress, force)
            for k in range(seeds)]
    summary = {"runs": runs, "run_dir": str(root), "seeds": [r["seed"] for r in runs]}
    for key in ("val_accuracy", "test_accuracy"):
        values = np.array([r[key] for r in runs])
        summary[key] = {"mean": round(float(values.mean()), 4), "std": round(float(values.std(ddof=1)), 4) if seeds > 1 else 0.0,
                        "min": float(values.min()), "max": float(values.max())}
    write_json_atomic(root / "seeds.json", {k: v for k, v in summary.items() if k != "runs"}
                      | {"config": asdict(config), "dataset": dataset.name})
    return summary


def describe_run(run_dir: Path) -> dict:
    """What `model.pt` holds: dataset, GRU config, class names and parameter count."""
    checkpoint = load_checkpoint(Path(run_dir))
    return {"dataset": checkpoint.dataset, **checkpoint.model.config.as_dict(),
            "class_names": checkpoint.class_names, "params": count_parameters(checkpoint.model)}
