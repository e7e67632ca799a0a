"""Keyword-spotting clips → a `Dataset`: front-end features for the splits, and long labelled streams.

Features come from one of two front ends over 16 kHz audio (30 ms window, 20 ms hop, 10 MFCC):
`q15`, the device's integer front end (CMSIS-DSP's q15 MFCC, then a fixed integer step to int8 codes),
whose codes enter the model unchanged (`Dataset.input_codes`), and `float`, the float front end
reported beside it.  Training sees what the device computes.

Streams: the validation and test splits' clips laid into their split's background noise at seeded
gaps, every keyword clip once and some unknown words among them; a word's truth segment is the frames
that overlap its 1 s clip, the background is `_silence_`.  Stream audio is kept (`Recording.audio`),
and the test clips' audio (`Dataset.test_audio`), so a device can start from sound.  The datasets
bring the detector settings that suit words (`DETECTOR_DEFAULTS`); the background classes start no
event.  Features are cached in the user's cache directory, keyed by the audio and the front end.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
from tqdm import tqdm

from edgegru.atomic import write_atomic
from edgegru.cache import cache_dir
from edgegru.data.dataset import Dataset, Recording, make_split
from edgegru.data.kws_clips import SILENCE, UNKNOWN, ClipSplit, KwsClips
from edgegru.data.kws_frontend import CLIP_SAMPLES, HOP, SAMPLE_RATE, WINDOW, frame_count
from edgegru.data.mfcc_float import MfccFloat
from edgegru.data.mfcc_q15 import MfccQ15
from edgegru.data.wav_io import saturate_int16
from edgegru.errors import EdgeGRUError

FRONT_ENDS = ("q15", "float")
CODES_PER_UNIT = 32  # int8 codes per normalized unit (4 nat): C1-C9 of speech mostly within ±69 codes
FEATURES_VERSION = 1  # part of the feature cache's key: raise it when a front end's output changes
STREAM_SEED = 0
STREAM_CLIPS = 60  # clips per stream: about 3 minutes of audio each
GAP_SECONDS = (1.0, 3.0)  # background between two clips, uniform
UNKNOWN_SHARE = 0.25  # unknown-word clips laid into a stream per keyword clip
# A word lasts 0.3-0.9 s: smooth over 0.2 s, 3 hot steps (60 ms) make an event, 0.5 s suppression after it.
DETECTOR_DEFAULTS = {"window": 10, "min_duration": 3, "holdoff": 25}


def keyword_classes(class_names: list[str]) -> set[int]:
    """The classes that are words to spot: all but `_silence_` and `_unknown_` (none without `_silence_`:
    such a vocabulary has no background to stream words in)."""
    if SILENCE not in class_names:
        return set()
    return {i for i, name in enumerate(class_names) if name not in (SILENCE, UNKNOWN)}


def background_classes(class_names: list[str]) -> tuple[int, ...]:
    """What a stream hears between words: every class but the keywords (none without keywords)."""
    keywords = keyword_classes(class_names)
    return tuple(i for i in range(len(class_names)) if i not in keywords) if keywords else ()


@functools.cache
def audio_features(front_end: str):
    """The feature function of a front end: int16 [N, S] -> [N, T, F] (q15: the int8 codes, float: float32);
    prepared once per process, on first use."""
    if front_end == "q15":
        return MfccQ15().features
    if front_end == "float":
        return MfccFloat().features
    raise EdgeGRUError(f"unknown front end '{front_end}'; known: {', '.join(FRONT_ENDS)}")


def clip_frames(first_sample: int) -> tuple[int, int]:
    """First and last frame that overlap a clip starting at `first_sample`."""
    first = max(0, (first_sample - WINDOW) // HOP + 1)
    return first, (first_sample + CLIP_SAMPLES - 1) // HOP


def with_background(segments: list[tuple[int, int, int]], frames: int, background: int) -> tuple:
    """`segments` (in order, apart) with the frames between them, before and after, as `background`."""
    filled, next_free = [], 0
    for first, last, cls in segments:
        if first > next_free:
            filled.append((next_free, first - 1, background))
        filled.append((first, last, cls))
        next_free = last + 1
    if next_free < frames:
        filled.append((next_free, frames - 1, background))
    return tuple(filled)


def lay_clips(split: ClipSplit, noise: np.ndarray, keywords: set[int], unknown: int, silence: int, seed: int
              ) -> list[tuple[np.ndarray, tuple[tuple[int, int, int], ...]]]:
    """Streams of background noise with `split`'s keyword clips (each once) and some unknown-word clips
    added at seeded gaps: [(int16 audio, ((first frame, last frame, class), ...)), ...], every frame in
    one segment (the background's class `silence`)."""
    rng = np.random.default_rng(seed)
    keyword_rows = [i for i in range(len(split.y)) if int(split.y[i]) in keywords]
    unknown_rows = [i for i in range(len(split.y)) if int(split.y[i]) == unknown]
    extra = rng.choice(unknown_rows, size=min(len(unknown_rows), int(len(keyword_rows) * UNKNOWN_SHARE)),
                       replace=False) if unknown_rows else []
    rows = list(rng.permutation(np.concatenate([keyword_rows, extra]).astype(np.int64)))
    streams = []
    for begin in range(0, len(rows), STREAM_CLIPS):
        chunk = rows[begin: begin + STREAM_CLIPS]
        gaps = (rng.uniform(*GAP_SECONDS, size=len(chunk) + 1) * SAMPLE_RATE).astype(np.int64)
        starts = np.cumsum(gaps[:-1]) + np.arange(len(chunk)) * CLIP_SAMPLES
        total = int(starts[-1] + CLIP_SAMPLES + gaps[-1])
        offset = int(rng.integers(0, max(1, len(noise) - total)))
        background = np.resize(np.roll(noise, -offset), total).astype(np.int32)
        segments = []
        for row, start in zip(chunk, starts):
            background[start: start + CLIP_SAMPLES] += split.audio[row]
            segments.append((*clip_frames(int(start)), int(split.y[row])))
        streams.append((saturate_int16(background),
                        with_background(segments, frame_count(total), silence)))
    return streams


def cached_features(audio: dict[str, np.ndarray], front_end: str) -> dict[str, np.ndarray]:
    """`audio_features(front_end)` of every named int16 array [N, S], computed once per distinct audio and
    kept in the user's cache (the front end costs about 0.1 ms a frame in Python)."""
    digest = hashlib.sha256(f"{FEATURES_VERSION} {front_end}".encode())
    for key in sorted(audio):
        digest.update(key.encode() + str(audio[key].shape).encode() + np.ascontiguousarray(audio[key]).tobytes())
    path = cache_dir() / f"features-{front_end}-{digest.hexdigest()[:20]}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            if set(stored.files) == set(audio):
                return {key: stored[key] for key in audio}
    features = audio_features(front_end)
    computed = {key: features(audio[key]) for key in tqdm(sorted(audio), desc=f"{front_end} features", unit="part")}
    def write(temp):
        with open(temp, "wb") as handle:
            np.savez(handle, **computed)

    write_atomic(path, write)
    return computed


def kws_dataset(clips: KwsClips, front_end: str, name: str) -> Dataset:
    """Features of every split by `front_end`, and the validation and test streams as recordings."""
    keywords = keyword_classes(clips.class_names)
    streams = {}
    if keywords:
        silence, unknown = clips.class_names.index(SILENCE), clips.class_names.index(UNKNOWN)
        for number, split_name in enumerate(("val", "test")):
            laid = lay_clips(clips.splits[split_name], clips.noise[split_name], keywords, unknown, silence,
                             STREAM_SEED + number)
            streams[split_name] = laid
    audio = {f"split/{split_name}": part.audio for split_name, part in clips.splits.items()}
    audio |= {f"stream/{split_name}/{i}": sound[None] for split_name, laid in streams.items()
              for i, (sound, _) in enumerate(laid)}
    features = cached_features(audio, front_end)

    def split(split_name: str):
        x, y = features[f"split/{split_name}"].astype(np.float32), clips.splits[split_name].y
        return make_split(f"{name}/{split_name}", x, np.full(len(x), x.shape[1]), y, len(clips.class_names))

    recordings = {split_name: [Recording(features[f"stream/{split_name}/{i}"][0].astype(np.float32), silence, i,
                                         segments, sound) for i, (sound, segments) in enumerate(laid)]
                  for split_name, laid in streams.items()}
    extra = {split_name: split(split_name) for split_name in clips.splits if split_name not in ("train", "val", "test")}
    return Dataset(name, list(clips.class_names), split("train"), split("val"), split("test"), recordings=recordings,
                   input_codes=CODES_PER_UNIT if front_end == "q15" else None, extra_tests=extra,
                   detector_defaults=DETECTOR_DEFAULTS, test_audio=clips.splits["test"].audio,
                   audio_features=lambda sound: audio_features(front_end)(sound).astype(np.float32))
