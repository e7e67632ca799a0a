"""Google Speech Commands (v1 or v2) from a folder the user brings, as `KwsClips`.

Layout: `<root>/<word>/<speaker>_nohash_<n>.wav`, `validation_list.txt` and `testing_list.txt` (paths
`<word>/<file>.wav` relative to root; every other clip is training), `_background_noise_/*.wav`.
The speaker id is the file name's hexadecimal hash prefix read as an integer.  Clips shorter than 1 s
are zero-padded at the end (longer ones keep their first second).

12 classes, as TensorFlow's speech_commands example makes them: the ten commands, `_unknown_` drawn at
random from all other words, and `_silence_` cut from the background noise, each of the last two
`UNKNOWN_PERCENT` / `SILENCE_PERCENT` of the split's command clips.  35 classes: every word of v2, no
unknown or silence class.  Each background recording is cut in time into train/val/test parts
(`NOISE_SHARES`), so no split hears another's noise; a split's noise bed is tiled to at least 60 s.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgegru.data.kws_clips import (
    COMMANDS, SILENCE, SILENCE_SPEAKER, SPEECH_COMMANDS_WORDS, UNKNOWN, ClipSplit, KwsClips,
)
from edgegru.data.kws_frontend import CLIP_SAMPLES, SAMPLE_RATE
from edgegru.data.kws_noise import noise_window
from edgegru.data.wav_io import read_wav
from edgegru.errors import EdgeGRUError

SEED = 0
UNKNOWN_PERCENT = 10  # unknown clips per 100 command clips of the split (12 classes)
SILENCE_PERCENT = 10  # silence clips per 100 command clips of the split (12 classes)
SILENCE_VOLUME = (0.0, 1.0)  # a silence clip is background noise times this factor, uniform
NOISE_SHARES = {"train": 0.6, "val": 0.2, "test": 0.2}  # consecutive parts of every background recording
NOISE_MIN_SECONDS = 60
NOISE_DIR = "_background_noise_"
FILE_NAME = re.compile(r"^([0-9a-fA-F]+)_nohash_\d+\.wav$")
LAYOUT_HINT = "expected the Speech Commands layout: <word>/<speaker>_nohash_<n>.wav, validation_list.txt, testing_list.txt, _background_noise_/*.wav"


def _check_layout(root: Path) -> list[str]:
    """The word folders of `root`, after checking it is a Speech Commands folder."""
    if not root.is_dir():
        raise EdgeGRUError(f"{root} is not a folder; {LAYOUT_HINT}")
    missing = [name for name in ("validation_list.txt", "testing_list.txt") if not (root / name).is_file()]
    if not any((root / NOISE_DIR).glob("*.wav")):
        missing.append(f"{NOISE_DIR}/*.wav")
    if missing:
        raise EdgeGRUError(f"{root} has no {', '.join(missing)}; {LAYOUT_HINT}")
    words = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_") and any(p.glob("*.wav")))
    if not words:
        raise EdgeGRUError(f"{root} has no <word>/*.wav folders; {LAYOUT_HINT}")
    return words


def _class_names(words: list[str], classes: int, root: Path) -> list[str]:
    if classes == 12:
        absent = [word for word in COMMANDS if word not in words]
        if absent:
            raise EdgeGRUError(f"{root} has no folder for {', '.join(absent)}; 12 classes need all ten commands")
        return [*COMMANDS, UNKNOWN, SILENCE]
    if classes == 35:
        if sorted(words) != sorted(SPEECH_COMMANDS_WORDS):
            raise EdgeGRUError(f"{root} has {len(words)} words, not v2's 35; 35 classes need Speech Commands v2 (or use classes=12)")
        return sorted(SPEECH_COMMANDS_WORDS)
    raise EdgeGRUError(f"Speech Commands has 12 or 35 classes, not {classes}")


def _speaker(path: Path) -> int:
    match = FILE_NAME.match(path.name)
    if match is None:
        raise EdgeGRUError(f"{path} is not named <speaker>_nohash_<n>.wav; {LAYOUT_HINT}")
    return int(match.group(1), 16)


def _file_lists(root: Path, words: list[str]) -> dict[str, list[Path]]:
    """Every clip's path by split, in sorted order."""
    listed = {}
    for split, name in (("val", "validation_list.txt"), ("test", "testing_list.txt")):
        listed |= {line.strip(): split for line in (root / name).read_text().splitlines() if line.strip()}
    files = {"train": [], "val": [], "test": []}
    for word in words:
        for path in sorted((root / word).glob("*.wav")):
            files[listed.get(f"{word}/{path.name}", "train")].append(path)
    return files


def _noise_beds(root: Path) -> dict[str, np.ndarray]:
    beds = {split: [] for split in NOISE_SHARES}
    for path in sorted((root / NOISE_DIR).glob("*.wav")):
        recording, start = read_wav(path, SAMPLE_RATE), 0
        for split, share in NOISE_SHARES.items():
            part = recording[start : start + round(share * len(recording))]
            start += len(part)
            beds[split].append(part)
    noise = {}
    for split, parts in beds.items():
        bed = np.concatenate(parts)
        if len(bed) < CLIP_SAMPLES:
            raise EdgeGRUError(f"{root / NOISE_DIR} holds too little noise for 1 s of {split} silence; add recordings")
        noise[split] = np.tile(bed, math.ceil(NOISE_MIN_SECONDS * SAMPLE_RATE / len(bed)))
    return noise


def _read_clips(paths: list[Path], desc: str) -> np.ndarray:
    audio = np.zeros((len(paths), CLIP_SAMPLES), np.int16)
    for path, row in zip(tqdm(paths, desc=desc, unit="clip"), audio):
        clip = read_wav(path, SAMPLE_RATE)[:CLIP_SAMPLES]
        row[: len(clip)] = clip
    return audio


def _split(root, split, paths, class_names, classes, noise, rng) -> ClipSplit:
    index = {name: i for i, name in enumerate(class_names)}
    if classes == 12:
        known = [p for p in paths if p.parent.name in COMMANDS]
        others = [p for p in paths if p.parent.name not in COMMANDS]
        unknown_count = min(len(others), math.ceil(len(known) * UNKNOWN_PERCENT / 100))
        paths = known + [others[i] for i in sorted(rng.choice(len(others), unknown_count, replace=False))]
        silences = math.ceil(len(known) * SILENCE_PERCENT / 100)
    else:
        silences = 0
    if not paths:
        raise EdgeGRUError(f"{root} has no {split} clips; check validation_list.txt and testing_list.txt")
    audio = _read_clips(paths, f"speech commands {split}")
    y = [index.get(p.parent.name, index.get(UNKNOWN)) for p in paths] + [index.get(SILENCE)] * silences
    speaker = [_speaker(p) for p in paths] + [SILENCE_SPEAKER] * silences
    silence = [np.round(noise_window(noise, rng) * rng.uniform(*SILENCE_VOLUME)) for _ in range(silences)]
    audio = np.concatenate([audio, np.array(silence, np.int16).reshape(-1, CLIP_SAMPLES)])
    return ClipSplit(audio, np.array(y, np.int64), np.array(speaker, np.int64))


def load_speech_commands(root, classes: int = 12) -> KwsClips:
    """The Speech Commands folder at `root` as 12-class or 35-class `KwsClips` (deterministic subsampling)."""
    root = Path(root)
    words = _check_layout(root)
    class_names = _class_names(words, classes, root)
    files = _file_lists(root, words)
    for path in (path for paths in files.values() for path in paths):
        _speaker(path)  # a misnamed file is reported before minutes of reading
    noise = _noise_beds(root)
    rng = np.random.default_rng(SEED)
    splits = {split: _split(root, split, files[split], class_names, classes, noise[split], rng) for split in files}
    return KwsClips(f"speech-commands-{classes}", class_names, splits, noise)
