"""Where each dataset comes from: files that ship inside installed packages, or the user's `.npz`.

Nothing is downloaded.  Package data is located with `importlib.util.find_spec`, so the providing
package (seglearn, sktime) is never imported, only its files are read.
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import numpy as np

from edgegru.data.dataset import Dataset, Recording, make_split, pad_sequences, split_indices
from edgegru.data.ts_format import read_ts
from edgegru.errors import EdgeGRUError

SPLIT_SEED = 0  # fixed partition of datasets that ship without a validation (or any) split

WATCH_RECORDED_HZ = 50
WATCH_DECIMATION = 2  # mean of each 2 samples: 25 Hz keeps the exercises' motion, halves the steps
WATCH_RATE_HZ = WATCH_RECORDED_HZ // WATCH_DECIMATION
WATCH_WINDOW = 4 * WATCH_RATE_HZ  # 4 s windows
WATCH_STRIDE = WATCH_RATE_HZ  # a new window every second
WATCH_SUBJECTS = {"train": (1, 2, 3, 4, 5, 6), "val": (7,), "test": (8, 9, 10)}


def package_file(package: str, *parts: str) -> Path:
    """Path of a data file inside an installed package, without importing that package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EdgeGRUError(f"this dataset needs the package '{package}': pip install {package}")
    path = Path(spec.submodule_search_locations[0], *parts)
    if not path.exists():
        raise EdgeGRUError(f"{path} is missing from the installed '{package}'; reinstall it")
    return path


def load_watch() -> Dataset:
    """seglearn's smartwatch IMU (accel g, gyro rad/s; 7 shoulder exercises; 10 subjects).

    Recorded at 50 Hz, decimated to 25 Hz by averaging sample pairs.  Split by subject (no subject in two splits); 4 s windows every 1 s for the splits; the whole
    recordings of the validation and test subjects are kept as `recordings` (for streaming).
    """
    raw = np.load(package_file("seglearn", "data", "watch_dataset.npy"), allow_pickle=True).item()
    splits = {}
    recordings = {"val": [], "test": []}
    for split_name, subjects in WATCH_SUBJECTS.items():
        windows, labels = [], []
        for recording, label, subject in zip(raw["X"], raw["y"], raw["subject"]):
            if subject not in subjects:
                continue
            usable = len(recording) // WATCH_DECIMATION * WATCH_DECIMATION
            recording = recording[:usable].reshape(-1, WATCH_DECIMATION, recording.shape[1]).mean(1).astype(np.float32)
            for start in range(0, len(recording) - WATCH_WINDOW + 1, WATCH_STRIDE):
                windows.append(recording[start : start + WATCH_WINDOW])
                labels.append(int(label))
            if split_name in recordings:
                recordings[split_name].append(Recording(recording, int(label), int(subject)))
        x = np.stack(windows)
        splits[split_name] = make_split(
            f"watch/{split_name}", x, np.full(len(x), WATCH_WINDOW), np.array(labels), len(raw["y_labels"])
        )
    return Dataset("watch", list(raw["y_labels"]), **splits, recordings=recordings)


def load_uea(problem: str, name: str) -> Dataset:
    """A UEA archive problem from sktime's wheel; 20% of its train part (fixed seed) is validation."""
    directory = ("datasets", "data", problem)
    train_seqs, train_labels, class_names = read_ts(package_file("sktime", *directory, f"{problem}_TRAIN.ts"))
    test_seqs, test_labels, _ = read_ts(package_file("sktime", *directory, f"{problem}_TEST.ts"))
    class_names = class_names or sorted(set(train_labels))
    index = {label: i for i, label in enumerate(class_names)}
    fit, val = split_indices(len(train_seqs), (0.8, 0.2), SPLIT_SEED)

    def split(split_name, sequences, labels):
        x, lengths = pad_sequences(sequences)
        return make_split(f"{name}/{split_name}", x, lengths, np.array([index[l] for l in labels]), len(class_names))

    return Dataset(
        name,
        class_names,
        train=split("train", [train_seqs[i] for i in fit], [train_labels[i] for i in fit]),
        val=split("val", [train_seqs[i] for i in val], [train_labels[i] for i in val]),
        test=split("test", test_seqs, test_labels),
    )


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits read row by row: 8 steps of 8 pixel intensities (0..16); 60/20/20."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    x = digits.images.astype(np.float32)
    names = [str(c) for c in digits.target_names]
    return _fixed_split("digits", x, np.full(len(x), 8), digits.target, names)


def load_npz(path: Path) -> Dataset:
    """User data: `X` [N, T, F], `y` [N] ints; optional `lengths` [N], `class_names`; 60/20/20 split."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise EdgeGRUError(f"{path}: not a readable .npz archive ({error})") from None
    missing = {"X", "y"} - arrays.keys()
    if missing:
        raise EdgeGRUError(f"{path}: missing array(s) {sorted(missing)}; expected X [N, T, F] and y [N]")
    x, y = arrays["X"], arrays["y"]
    if x.ndim != 3:
        raise EdgeGRUError(f"{path}: X must be [N, T, F], got shape {x.shape}")
    if y.shape != (len(x),):
        raise EdgeGRUError(f"{path}: y must have one label per sequence ({len(x)}), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise EdgeGRUError(f"{path}: y must hold integer class ids, got dtype {y.dtype}")
    lengths = arrays.get("lengths", np.full(len(x), x.shape[1]))
    if "class_names" in arrays:
        names = [str(c) for c in arrays["class_names"]]
    else:
        names = [str(c) for c in range(int(y.max()) + 1 if len(y) else 0)]
    if len(y) and (y.min() < 0 or y.max() >= len(names)):
        raise EdgeGRUError(f"{path}: labels span [{y.min()}, {y.max()}] but there are {len(names)} class names")
    if len(x) < 5:
        raise EdgeGRUError(f"{path}: {len(x)} sequences is too few for train/val/test splits (need >= 5)")
    return _fixed_split(str(path), x, lengths, y, names)


def _fixed_split(name, x, lengths, y, class_names) -> Dataset:
    parts = split_indices(len(x), (0.6, 0.2, 0.2), SPLIT_SEED)
    splits = {
        split_name: make_split(f"{name}/{split_name}", x[idx], np.asarray(lengths)[idx], np.asarray(y)[idx], len(class_names))
        for split_name, idx in zip(("train", "val", "test"), parts)
    }
    return Dataset(name, class_names, **splits)
