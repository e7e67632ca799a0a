"""`model.pt`: the trained float model with its config, normalization and class names.

A plain dict of tensors, strings and numbers saved with `torch.save` and read back with
`weights_only=True`, so loading never runs code from the file.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgegru.atomic import write_bytes_atomic
from edgegru.data import Dataset, Normalization, load_dataset
from edgegru.errors import EdgeGRUError
from edgegru.model import GRUClassifier, ModelConfig

FORMAT = "edgegru-model"
VERSION = 1


@dataclass
class Checkpoint:
    model: GRUClassifier
    normalization: Normalization
    class_names: list[str]
    dataset: str


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": checkpoint.model.config.as_dict(),
        "state_dict": checkpoint.model.state_dict(),
        "normalization_mean": torch.from_numpy(checkpoint.normalization.mean),
        "normalization_std": torch.from_numpy(checkpoint.normalization.std),
        "normalization_codes": checkpoint.normalization.codes,
        "class_names": list(checkpoint.class_names),
        "dataset": checkpoint.dataset,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def run_dataset(run_dir: Path) -> Dataset:
    """The dataset a run was trained on (its name or .npz path is stored in model.pt)."""
    return load_dataset(load_checkpoint(run_dir).dataset)


def load_checkpoint(path: Path) -> Checkpoint:
    """Read and validate `model.pt`; a missing, corrupt or foreign file raises EdgeGRUError."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise EdgeGRUError(f"no checkpoint at {path}; train one first with `edgegru train`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EdgeGRUError(f"{path}: not a readable EdgeGRU checkpoint ({first_line})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise EdgeGRUError(f"{path}: not an EdgeGRU checkpoint (no '{FORMAT}' marker)")
    if payload.get("version") != VERSION:
        raise EdgeGRUError(f"{path}: checkpoint version {payload.get('version')}, this EdgeGRU reads {VERSION}")
    try:
        model = GRUClassifier(ModelConfig(**payload["config"]))
        model.load_state_dict(payload["state_dict"])
        normalization = Normalization(
            payload["normalization_mean"].numpy().astype(np.float32),
            payload["normalization_std"].numpy().astype(np.float32),
            bool(payload.get("normalization_codes", False)),
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise EdgeGRUError(f"{path}: checkpoint is incomplete or inconsistent ({error})") from None
    model.eval()
    return Checkpoint(model, normalization, list(payload["class_names"]), str(payload["dataset"]))
