"""The keyword-spotting audio container: 1 s int16 clips with labels and speakers, plus background noise.

Every source of keyword audio (synthesized, Speech Commands) yields a `KwsClips`; features and streams
are made from it downstream.  Audio is int16 mono at `kws_frontend.SAMPLE_RATE` Hz, full scale 32768.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgegru.atomic import write_atomic

# The usual vocabularies: Speech Commands' ten commands, the ten digits, and all 35 words of its v2 (v1 has
# the first 30: no backward, follow, forward, learn, visual).
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPEECH_COMMANDS_WORDS = (*COMMANDS, *DIGITS, "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila",
                         "tree", "wow", "backward", "follow", "forward", "learn", "visual")
UNKNOWN = "_unknown_"
SILENCE = "_silence_"
SILENCE_SPEAKER = -1  # the speaker of a noise-only clip
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # a fixed member time: the same clips give the same file bytes


@dataclass(frozen=True)
class ClipSplit:
    audio: np.ndarray  # int16 [N, kws_frontend.CLIP_SAMPLES]: 1 s
    y: np.ndarray  # int64 [N], index into KwsClips.class_names
    speaker: np.ndarray  # int64 [N], voice id; SILENCE_SPEAKER for silence

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class KwsClips:
    name: str
    class_names: list[str]  # keywords..., then "_unknown_", "_silence_" (the 35-word set has neither)
    splits: dict[str, ClipSplit]  # "train", "val", "test" always; optionally "test-engine", "real"
    noise: dict[str, np.ndarray]  # int16 [T] background noise per split ("train", "val", "test"), >= 60 s each


def save_clips(path: Path, clips: KwsClips) -> Path:
    """Write `clips` as one uncompressed .npz, atomically, byte for byte the same for the same clips."""
    arrays = {"name": np.array(clips.name), "class_names": np.array(clips.class_names)}
    for split, part in clips.splits.items():
        arrays |= {f"split/{split}/audio": part.audio, f"split/{split}/y": part.y, f"split/{split}/speaker": part.speaker}
    arrays |= {f"noise/{split}": noise for split, noise in clips.noise.items()}

    def write(temp: Path) -> None:
        with zipfile.ZipFile(temp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for key, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
                archive.writestr(zipfile.ZipInfo(f"{key}.npy", ZIP_DATE), buffer.getvalue())

    return write_atomic(path, write)


def load_clips(path: Path) -> KwsClips:
    """The `KwsClips` written by `save_clips`."""
    with np.load(path, allow_pickle=False) as data:
        splits: dict[str, dict[str, np.ndarray]] = {}
        noise = {}
        for key in data.files:
            kind, *rest = key.split("/")
            if kind == "split":
                splits.setdefault(rest[0], {})[rest[1]] = data[key]
            elif kind == "noise":
                noise[rest[0]] = data[key]
        return KwsClips(
            str(data["name"]),
            [str(name) for name in data["class_names"]],
            {split: ClipSplit(**fields) for split, fields in splits.items()},
            noise,
        )
