"""The uniform shape every dataset takes: padded float32 sequences, true lengths, labels, fixed splits.

A `Split` holds `x` as float32 `[N, T, F]` (zero-padded after each sequence's true length), `lengths`
int64 `[N]` (1 <= length <= T) and `y` int64 `[N]` in `[0, num_classes)`.  Features are raw
(un-normalized); `Normalization` is computed from the training split only and travels with the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgegru.errors import EdgeGRUError


@dataclass(frozen=True)
class Split:
    x: np.ndarray
    lengths: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Normalization:
    """Per-feature affine map x_norm = (x - mean) / std, in the data's own units.

    `codes`: the raw features are already the device's integer input codes (a keyword-spotting front
    end's int8 output); then mean is 0 and std one power of two for every feature, and the quantizer
    gives the input tensor scale 1/std and zero point 0, so a code passes into the model unchanged."""

    mean: np.ndarray
    std: np.ndarray
    codes: bool = False

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)


@dataclass(frozen=True)
class Recording:
    """One continuous recording: raw float32 features [T, F], its class, and who was recorded.

    A recording with `segments` [(first step, last step, class), ...] carries its own truth (a long
    keyword-spotting stream: background with words at known steps) and `label` is its background class;
    `audio` (int16) is the sound its features were computed from, for a device that starts from audio."""

    signal: np.ndarray
    label: int
    subject: int
    segments: tuple[tuple[int, int, int], ...] | None = None
    audio: np.ndarray | None = None

    @property
    def truth(self) -> tuple[tuple[int, int, int], ...]:
        return self.segments if self.segments is not None else ((0, len(self.signal) - 1, self.label),)


@dataclass(frozen=True)
class Dataset:
    name: str
    class_names: list[str]
    train: Split
    val: Split
    test: Split
    # Whole recordings of the validation and test subjects, for streaming: {"val": [...], "test": [...]}.
    recordings: dict[str, list[Recording]] = field(default_factory=dict)
    # Features that are integer input codes (see `Normalization.codes`): the codes per normalized unit.
    input_codes: int | None = None
    # More held-out splits reported beside `test` (keyword spotting: another engine's voices, a real voice).
    extra_tests: dict[str, Split] = field(default_factory=dict)
    # Audio datasets: int16 audio [N, S] -> raw features [N, T, F], the front end the features came from.
    audio_features: Callable[[np.ndarray], np.ndarray] | None = None
    # Audio datasets: the test split's clips (int16 [N, S]) its features were computed from.
    test_audio: np.ndarray | None = None
    # Streaming detector settings that suit the data (`stream_detect.DetectorConfig` fields), over its defaults.
    detector_defaults: dict = field(default_factory=dict)

    @property
    def num_features(self) -> int:
        return self.train.x.shape[2]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def normalization(self) -> Normalization:
        """Mean and std of every feature over the valid (unpadded) training steps (code features: fixed)."""
        if self.input_codes is not None:
            return Normalization(np.zeros(self.num_features, np.float32),
                                 np.full(self.num_features, self.input_codes, np.float32), codes=True)
        valid = _valid_mask(self.train)
        values = self.train.x[valid].astype(np.float64)
        std = values.std(axis=0)
        std[std < 1e-8] = 1.0
        return Normalization(values.mean(axis=0).astype(np.float32), std.astype(np.float32))


def _valid_mask(split: Split) -> np.ndarray:
    return np.arange(split.x.shape[1])[None, :] < split.lengths[:, None]


def pad_sequences(sequences: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack `[T_i, F]` arrays into float32 `[N, max T_i, F]`, zero-padded, and their lengths."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    x = np.zeros((len(sequences), int(lengths.max()), sequences[0].shape[1]), dtype=np.float32)
    for row, sequence in zip(x, sequences):
        row[: len(sequence)] = sequence
    return x, lengths


def make_split(name: str, x: np.ndarray, lengths: np.ndarray, y: np.ndarray, num_classes: int) -> Split:
    """Validate one split and return it; every problem is named in the error."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise EdgeGRUError(f"{name}: sequences must be [N, T, F], got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise EdgeGRUError(f"{name}: sequences must be numeric, got dtype {x.dtype}")
    n, t, _ = x.shape
    if n == 0:
        raise EdgeGRUError(f"{name}: the split is empty")
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise EdgeGRUError(f"{name}: labels must be {n} integers, got shape {y.shape} dtype {y.dtype}")
    if y.min() < 0 or y.max() >= num_classes:
        raise EdgeGRUError(f"{name}: labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]")
    lengths = np.asarray(lengths)
    if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
        raise EdgeGRUError(f"{name}: lengths must be {n} integers, got shape {lengths.shape}")
    if lengths.min() < 1 or lengths.max() > t:
        raise EdgeGRUError(f"{name}: lengths must lie in [1, {t}], got [{lengths.min()}, {lengths.max()}]")
    split = Split(x.astype(np.float32), lengths.astype(np.int64), y.astype(np.int64))
    if not np.isfinite(split.x[_valid_mask(split)]).all():
        raise EdgeGRUError(f"{name}: sequences contain NaN or inf; clean or impute them first")
    return split


def split_indices(n: int, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """A fixed random partition of range(n) into consecutive parts of the given fractions."""
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    return [np.sort(part) for part in np.split(order, bounds)]
