"""Datasets behind one registry: `load_dataset(name)` gives a `Dataset` of uniform shape.

Names: `watch` (default), `japanese-vowels`, `basic-motions`, `digits`, or a path to a user `.npz`.
"""

from __future__ import annotations

from pathlib import Path

from edgegru.data.dataset import Dataset, Normalization, Recording, Split
from edgegru.data.sources import load_digits, load_npz, load_uea, load_watch
from edgegru.errors import EdgeGRUError

DEFAULT_DATASET = "watch"

DATASETS = {
    "watch": load_watch,
    "japanese-vowels": lambda: load_uea("JapaneseVowels", "japanese-vowels"),
    "basic-motions": lambda: load_uea("BasicMotions", "basic-motions"),
    "digits": load_digits,
}


def load_dataset(name: str) -> Dataset:
    """A registered dataset by name, or a user `.npz` by path."""
    if name.endswith(".npz"):
        if not Path(name).is_file():
            raise EdgeGRUError(f"no such file: {name}")
        return load_npz(Path(name))
    if name not in DATASETS:
        raise EdgeGRUError(f"unknown dataset '{name}'; available: {', '.join(DATASETS)}, or a path to a .npz file")
    return DATASETS[name]()


__all__ = ["DATASETS", "DEFAULT_DATASET", "Dataset", "Normalization", "Recording", "Split", "load_dataset"]
