"""Training-time augmentation of sensor sequences: new, label-preserving variants of every batch.

Applied to the training split only, one fresh draw per batch, from a generator seeded by the run's
seed, so a seed gives the same augmented batches (and the same weights) every time.  Each transform
mimics a nuisance that differs between recordings but not between classes:

- rotation: the sensor sits at another angle (a watch worn differently).  One random rotation per
  sequence turns every 3-axis sensor of that sequence (accelerometer and gyroscope alike) in the raw,
  physical units, before normalization.  Only for datasets whose 3-axis channel triads are known
  (`SENSOR_AXES`): rotating unrelated features would not be a nuisance but a different input.
- scaling: another gain per feature and sequence, x * (1 + scale * N(0, 1)), in raw units.
- jitter: sensor noise, `jitter` standard deviations of each feature.
- crop: a random window of at least `crop` of each sequence's length (all of a batch keep the same
  fraction), anywhere in the sequence: the activity does not depend on where a window starts or ends.
  Only when the training sequences are at least `MIN_CROP_STEPS` long: cutting 1 of 8 rows of a
  digit removes a part of the pattern, not a nuisance.
  Streamed datasets crop down to a quarter: after a change of activity the stream has only the
  steps since, and windows cut by hand never showed the model so few.  Keyword clips are not cropped
  (nor scaled): a crop of a 1 s clip cuts its word out, and the clips already vary level, offset and noise.
- prefix: for datasets that are streamed (whole recordings, `Dataset.recordings`), a share `prefix` of
  the sequences is preceded by the end (1 to all of its steps) of another sequence of the batch, with
  the label of the sequence that follows.  A stream carries its state across a change of activity;
  windows that each start from a zero state never teach the model to let go of the previous one.

Measured on the float GRU at H=64, 3 seeds x 2 variants: the README's "Training" section.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from edgegru.data import Dataset

# 3-axis sensors of the registered datasets: the features that rotate together.  Both are a
# 3-axis accelerometer then a 3-axis gyroscope in the watch's frame.
SENSOR_AXES = {
    "watch": ((0, 1, 2), (3, 4, 5)),  # ax ay az wx wy wz
    "basic-motions": ((0, 1, 2), (3, 4, 5)),  # UEA BasicMotions: accelerometer xyz, gyroscope xyz
}
MIN_CROP_STEPS = 32
STREAMED_CROP = 0.25  # a streamed model decides from a few steps after a change of activity
STREAMED_PREFIX = 0.5


@dataclass(frozen=True)
class Augmentation:
    rotate_degrees: float = 15.0  # standard deviation of the rotation angle (random axis)
    scale: float = 0.1
    jitter: float = 0.1
    crop: float = 0.7  # shortest kept fraction of a sequence; 1 = no cropping
    prefix: float = 0.0  # share of sequences preceded by the end of another; 0 = none
    axes: tuple[tuple[int, int, int], ...] = ()  # the dataset's 3-axis sensors; () = no rotation

    @classmethod
    def for_dataset(cls, dataset: Dataset, **overrides) -> Augmentation:
        """The default augmentation, with the dataset's sensor axes and no crop for short sequences."""
        settings = {"axes": SENSOR_AXES.get(dataset.name, ())}
        if int(dataset.train.lengths.min()) < MIN_CROP_STEPS:
            settings["crop"] = 1.0
        if dataset.recordings:
            settings |= {"crop": STREAMED_CROP, "prefix": STREAMED_PREFIX}
        if dataset.audio_features is not None:  # keyword clips: a crop cuts the word out of its clip, and a
            settings |= {"crop": 1.0, "scale": 0.0}  # gain of sound moves C0 only (the data mixes levels)
        return cls(**{**settings, **overrides})


def rotations(count: int, degrees: float, generator: torch.Generator) -> torch.Tensor:
    """`count` random 3x3 rotations: uniform random axes, angles ~ N(0, degrees) (Rodrigues' formula)."""
    axis = torch.randn(count, 3, generator=generator)
    axis = axis / axis.norm(dim=1, keepdim=True).clamp(min=1e-12)
    angle = torch.randn(count, generator=generator) * math.radians(degrees)
    k = torch.zeros(count, 3, 3)
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(1, 2)
    return torch.eye(3) + angle.sin()[:, None, None] * k + (1 - angle.cos())[:, None, None] * (k @ k)


def crop(x: torch.Tensor, lengths: torch.Tensor, fraction: float, generator: torch.Generator
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """A window of round(fraction * length) steps (at least 1) at a random start in each sequence,
    moved to the front; the batch is trimmed to its longest window."""
    kept = (lengths.double() * fraction).round().long().clamp(min=1)
    start = (torch.rand(len(x), generator=generator, dtype=torch.float64) * (lengths - kept + 1)).long()
    steps = int(kept.max())
    index = (start[:, None] + torch.arange(steps)[None, :]).clamp(max=x.shape[1] - 1)
    return torch.gather(x, 1, index[:, :, None].expand(-1, -1, x.shape[2])), kept


def prefix(x: torch.Tensor, lengths: torch.Tensor, share: float, generator: torch.Generator
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sequence, with probability `share`, preceded by the last 1..L steps of another sequence of
    the batch (L its length); returns the padded sequences and their new lengths."""
    batch = len(x)
    other = (torch.arange(batch) + torch.randint(1, max(batch, 2), (batch,), generator=generator)) % batch
    chosen = torch.rand(batch, generator=generator) < share
    taken = (torch.rand(batch, generator=generator, dtype=torch.float64) * lengths[other]).long() + 1
    taken = torch.where(chosen, taken.clamp(max=lengths[other]), 0)
    new_lengths = taken + lengths
    t = torch.arange(int(new_lengths.max()))[None, :]
    from_other = (lengths[other][:, None] - taken[:, None] + t).clamp(0, x.shape[1] - 1)
    from_self = (t - taken[:, None]).clamp(0, x.shape[1] - 1)
    gathered_other = torch.gather(x[other], 1, from_other[:, :, None].expand(-1, -1, x.shape[2]))
    gathered_self = torch.gather(x, 1, from_self[:, :, None].expand(-1, -1, x.shape[2]))
    out = torch.where((t < taken[:, None])[:, :, None], gathered_other, gathered_self)
    return out * (t < new_lengths[:, None])[:, :, None], new_lengths


def augment(x: torch.Tensor, lengths: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
            augmentation: Augmentation, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw features x [B, T, F] (zero padded) and lengths [B] -> augmented, normalized, padded x and lengths."""
    if augmentation.crop < 1:
        fraction = augmentation.crop + (1 - augmentation.crop) * float(torch.rand(1, generator=generator, dtype=torch.float64))
        x, lengths = crop(x, lengths, fraction, generator)
    if augmentation.prefix:
        x, lengths = prefix(x, lengths, augmentation.prefix, generator)
    batch, _, features = x.shape
    if augmentation.axes and augmentation.rotate_degrees:
        rotation = rotations(batch, augmentation.rotate_degrees, generator)
        x = x.clone()
        for axes in augmentation.axes:
            x[:, :, list(axes)] = torch.einsum("btj,bij->bti", x[:, :, list(axes)], rotation)
    if augmentation.scale:
        x = x * (1 + augmentation.scale * torch.randn(batch, 1, features, generator=generator))
    x = (x - mean) / std
    if augmentation.jitter:
        x = x + augmentation.jitter * torch.randn(x.shape, generator=generator)
    return x * (torch.arange(x.shape[1])[None, :] < lengths[:, None])[:, :, None], lengths
