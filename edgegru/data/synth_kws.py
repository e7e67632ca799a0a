"""synth-kws: keyword clips spoken by Debian's speech synthesizers, generated once and cached.

Voices.  An espeak-ng voice is an accent (`ESPEAK_ACCENTS`) with a voice variant (`ESPEAK_VARIANTS`).
The variants are dealt once into train/val/test groups, so no test or val voice shares its variant
(timbre) with a training voice; each split's voices are drawn from its group's accent x variant pairs.
flite's voices are a second engine and form the "test-engine" split only.  For the digits, one real
speaker (Asterisk's "Allison" prompts, 8 kHz) forms the "real" split.

Random voices.  The training split also has `Size.random_voices` voices whose variants are bred from
the training variants (`espeak_variants`: each setting from a parent, one vocal-tract factor, jitter),
so the model hears many more timbres than the 60 variants, none of them a held-out one.

Clips.  Every voice says every keyword once and one word of the vocabulary's unknown words, at a speed
and pitch drawn per word; each split also gets as many `_silence_` clips (noise only, at a random gain)
as it has voices, so the classes are balanced.  A word is placed at a uniformly random offset in the
1 s clip, at a random level, over a random 1 s stretch of its split's noise bed at a uniformly random
SNR, or clean.  Half the training clips (`STREAM_BED_SHARE`) also carry a second stretch of their
split's noise bed at its full level, as the long streams lay every clip (`kws.lay_clips`): trained on
single noise only, the model lost 0.19 of its test accuracy on the clips as the streams hold them.
The noise beds (`kws_noise.noise_bed`) are seeded per split; their babble is made of the split's own
unknown words.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgegru.cache import cache_dir
from edgegru.data.kws_clips import (
    COMMANDS, DIGITS, SILENCE, SILENCE_SPEAKER, SPEECH_COMMANDS_WORDS, UNKNOWN, ClipSplit, KwsClips,
    load_clips, save_clips,
)
from edgegru.data.espeak_variants import MAX_VARIANTS, random_variants
from edgegru.data.kws_frontend import CLIP_SAMPLES
from edgegru.data.kws_noise import noise_bed, noise_window, place_word
from edgegru.data.speech_synth import Utterance, speak_all, trim
from edgegru.data.wav_io import read_wav, saturate_int16
from edgegru.errors import EdgeGRUError

GENERATOR_VERSION = 2  # part of the cache file name: raise it whenever the clips would come out different
SEED = 0

VOCABULARIES = {"commands": COMMANDS, "digits": DIGITS}
# Speech Commands' auxiliary words; a vocabulary's unknown words are these and the other vocabulary's.
AUXILIARY_WORDS = tuple(word for word in SPEECH_COMMANDS_WORDS if word not in COMMANDS + DIGITS)

ESPEAK_ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
# espeak-ng 1.51's voice variants (`espeak-ng --voices=variant`), all 101.
ESPEAK_VARIANTS = (
    "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie", "antonio", "aunty", "belinda", "benjamin", "boris",
    "caleb", "david", "Demonic", "Denis", "Diogo", "ed", "edward", "edward2", "Gene", "Gene2", "gustave",
    "announcer", "Henrique", "Hugo", "iven", "iven2", "iven3", "iven4", "Jacky", "john", "kaukovalta", "Lee",
    "linda", "marcelo", "Marco", "Mario", "max", "Michael", "michel", "miguel", "Mike", "Mr", "Nguyen", "pablo",
    "paul", "pedro", "quincy", "RicishayMax", "RicishayMax2", "RicishayMax3", "rob", "robert", "robosoft",
    "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7", "robosoft8", "steph",
    "steph2", "steph3", "Storm", "Tweaky", "UniRobot", "zac", "anika", "anikaRobot", "AnxiousAndy", "fast",
    "f1", "f2", "f3", "f4", "f5", "whisperf", "grandpa", "klatt", "klatt2", "klatt3", "klatt4", "klatt5",
    "klatt6", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "norbert", "sandro", "shelby", "travis", "victor",
    "whisper", "croak", "grandma",
)
VARIANT_SHARES = {"train": 0.6, "val": 0.2, "test": 0.2}  # of the variants, dealt at random once
ESPEAK_WPM = (130.0, 210.0)  # speed, uniform (espeak-ng's default is 175); the slowest words stay under 0.9 s
ESPEAK_PITCH = (20.0, 80.0)  # pitch 0-99, uniform (default 50)
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FLITE_STRETCH = (0.8, 1.35)  # duration_stretch, uniform
ALLISON_DIGITS = Path("/usr/share/asterisk/sounds/en_US_f_Allison/digits")  # 0.wav ... 9.wav, 8 kHz

SNR_DB = (5.0, 20.0)  # a keyword's SNR over its noise, uniform ...
CLEAN_FRACTION = 0.1  # ... except this share of the clips, which have no noise at all
WORD_DBFS = (-32.0, -16.0)  # a word's rms level, uniform
SILENCE_GAIN_DB = (-20.0, 10.0)  # a silence clip is its noise bed (at -30 dBFS) at this gain, uniform
STREAM_BED_SHARE = 0.5  # training clips that also carry their noise bed as the streams lay it


@dataclass(frozen=True)
class Size:
    voices: dict[str, int]  # espeak-ng voices per split
    random_voices: int  # training voices of random variants (`espeak_variants`), on top of `voices["train"]`
    flite_takes: int  # clips of each word per flite voice, each at its own speed
    real_takes: int  # clips of each Allison digit, each with its own placement and noise


SIZES = {
    "full": Size({"train": 320, "val": 80, "test": 80}, random_voices=600, flite_takes=8, real_takes=8),
    "small": Size({"train": 6, "val": 2, "test": 2}, random_voices=3, flite_takes=1, real_takes=1),
}


def cache_path(vocabulary: str, size: str, version: int | str = GENERATOR_VERSION) -> Path:
    return cache_dir() / f"synth-kws-{vocabulary}-{size}-v{version}.npz"


def unknown_words(vocabulary: str) -> tuple[str, ...]:
    others = tuple(word for name, words in VOCABULARIES.items() if name != vocabulary for word in words)
    return AUXILIARY_WORDS + others


def variant_groups() -> tuple[dict[str, list[str]], np.random.Generator]:
    """The variants dealt into disjoint groups per split, and the generator that draws the voices next."""
    rng = np.random.default_rng([SEED, 0])
    variants = list(rng.permutation(ESPEAK_VARIANTS))
    groups, start = {}, 0
    for split, share in VARIANT_SHARES.items():
        groups[split] = variants[start : start + round(share * len(variants))]
        start += len(groups[split])
    return groups, rng


def espeak_voices(size: Size) -> dict[str, list[str]]:
    """"accent+variant" names per split, drawn within the split's group of variants."""
    groups, rng = variant_groups()
    voices = {}
    for split, group in groups.items():
        pairs = [f"{accent}+{variant}" for variant in group for accent in ESPEAK_ACCENTS]
        voices[split] = [pairs[i] for i in rng.choice(len(pairs), size.voices[split], replace=False)]
    return voices


def random_voices(size: Size) -> tuple[Path, list[str]]:
    """The espeak-ng data directory of the random variants and `size.random_voices` "accent+variant"
    names: the variants bred from the training group, each voiced in turn with a random accent."""
    groups, _ = variant_groups()
    rng = np.random.default_rng([SEED, 5])
    data, variants = random_variants(groups["train"], min(size.random_voices, MAX_VARIANTS), rng)
    return data, [f"{ESPEAK_ACCENTS[rng.integers(len(ESPEAK_ACCENTS))]}+{variants[i % len(variants)]}"
                  for i in range(size.random_voices)]


@dataclass(frozen=True)
class Request:
    """A word to place in a clip: who says it (speaker id) and which class it is."""

    utterance: Utterance
    label: int
    speaker: int


def _take(keywords, unknown, rng) -> list[tuple[str, int]]:
    """(word, label) of what a voice says once: every keyword, then one unknown word drawn from `unknown`."""
    return [(word, label) for label, word in enumerate(keywords)] + [(rng.choice(unknown), len(keywords))]


def _espeak_requests(voices: list[str], first_speaker: int, keywords, unknown, rng, data: str = "") -> list[Request]:
    requests = []
    for i, voice in enumerate(voices):
        for word, label in _take(keywords, unknown, rng):
            utterance = Utterance("espeak-ng", voice, str(word), rng.uniform(*ESPEAK_WPM), rng.uniform(*ESPEAK_PITCH), data)
            requests.append(Request(utterance, label, first_speaker + i))
    return requests


def _flite_requests(takes: int, first_speaker: int, keywords, unknown, rng) -> list[Request]:
    requests = []
    for i, voice in enumerate(FLITE_VOICES):
        for _ in range(takes):
            requests += [Request(Utterance("flite", voice, str(word), rng.uniform(*FLITE_STRETCH)), label, first_speaker + i)
                         for word, label in _take(keywords, unknown, rng)]
    return requests


def _labels_speakers(requests: list[Request]) -> tuple[list[int], list[int]]:
    return [r.label for r in requests], [r.speaker for r in requests]


def _clip(word: np.ndarray, bed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A word placed in a 1 s clip: random offset, level, noise stretch and SNR (or clean).  A word longer
    than the clip keeps its first second (none is at the speeds used)."""
    word = word[:CLIP_SAMPLES]
    offset = int(rng.integers(0, CLIP_SAMPLES - len(word) + 1))
    snr = None if rng.random() < CLEAN_FRACTION else rng.uniform(*SNR_DB)
    return place_word(word, offset, rng.uniform(*WORD_DBFS), noise_window(bed, rng), snr)


def _silence(bed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gain = 10 ** (rng.uniform(*SILENCE_GAIN_DB) / 20)
    return saturate_int16(noise_window(bed, rng) * gain)


def _on_bed(clip: np.ndarray, bed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The clip over a stretch of its noise bed at full level, as a stream lays it."""
    return saturate_int16(clip.astype(np.int32) + noise_window(bed, rng))


def _split(words, labels, speakers, bed, silences: int, silence_label: int, rng, bed_share: float = 0.0) -> ClipSplit:
    """The words placed in clips, then `silences` noise-only clips; a share `bed_share` of them over the bed."""
    audio = [_clip(word, bed, rng) for word in words] + [_silence(bed, rng) for _ in range(silences)]
    if bed_share:
        audio = [_on_bed(clip, bed, rng) if rng.random() < bed_share else clip for clip in audio]
    y = list(labels) + [silence_label] * silences
    speaker = list(speakers) + [SILENCE_SPEAKER] * silences
    return ClipSplit(np.stack(audio), np.array(y, np.int64), np.array(speaker, np.int64))


def _allison_digits() -> list[np.ndarray]:
    paths = [ALLISON_DIGITS / f"{digit}.wav" for digit in range(10)]
    if not all(path.is_file() for path in paths):
        raise EdgeGRUError(
            f"the real digits {ALLISON_DIGITS}/0-9.wav are missing (Debian package asterisk-core-sounds-en-wav): "
            "run `make toolchain`, or `sudo apt-get install asterisk-core-sounds-en-wav`"
        )
    return [trim(read_wav(path)) for path in paths]


def generate(vocabulary: str, size: Size) -> KwsClips:
    """Synthesize and assemble the clips (deterministic: the same arguments give the same arrays)."""
    keywords, unknown = VOCABULARIES[vocabulary], unknown_words(vocabulary)
    class_names = [*keywords, UNKNOWN, SILENCE]
    unknown_label, silence_label = len(keywords), len(keywords) + 1
    real = _allison_digits() if vocabulary == "digits" else None  # fail before the long part

    voices = espeak_voices(size)
    requests, speaker = {}, 0
    for index, split in enumerate(VARIANT_SHARES):
        requests[split] = _espeak_requests(voices[split], speaker, keywords, unknown, np.random.default_rng([SEED, 1, index]))
        speaker += len(voices[split])
    data, bred = random_voices(size)
    requests["train"] += _espeak_requests(bred, speaker, keywords, unknown, np.random.default_rng([SEED, 6]), str(data))
    speaker += len(bred)
    requests["test-engine"] = _flite_requests(size.flite_takes, speaker, keywords, unknown, np.random.default_rng([SEED, 2]))
    speaker += len(FLITE_VOICES)

    order = [r for split_requests in requests.values() for r in split_requests]
    spoken = iter(speak_all([r.utterance for r in order], desc=f"synth-kws {vocabulary}"))
    words = {split: [next(spoken) for _ in split_requests] for split, split_requests in requests.items()}

    noise, splits = {}, {}
    for index, split in enumerate(VARIANT_SHARES):
        rng = np.random.default_rng([SEED, 3, index])
        babble = [word for word, r in zip(words[split], requests[split]) if r.label == unknown_label]
        noise[split] = noise_bed(rng, babble)
        voice_count = len({r.speaker for r in requests[split]})
        splits[split] = _split(words[split], *_labels_speakers(requests[split]), noise[split], voice_count,
                               silence_label, rng, STREAM_BED_SHARE if split == "train" else 0.0)
    rng = np.random.default_rng([SEED, 4])
    splits["test-engine"] = _split(words["test-engine"], *_labels_speakers(requests["test-engine"]), noise["test"],
                                   size.flite_takes * len(FLITE_VOICES), silence_label, rng)
    if real is not None:
        digits = [digit for _ in range(size.real_takes) for digit in range(10)]
        splits["real"] = _split([real[d] for d in digits], digits, [speaker] * len(digits), noise["test"], 0, silence_label, rng)
    return KwsClips(f"synth-kws-{vocabulary}", class_names, splits, noise)


def load_synth_kws(vocabulary: str = "commands", size: str = "full") -> KwsClips:
    """The synthesized keyword clips of `vocabulary` ("commands" or "digits") at `size` ("full" or "small"),
    from the user's cache, generating and caching them on first use (and then deleting other versions')."""
    if vocabulary not in VOCABULARIES:
        raise EdgeGRUError(f"unknown synth-kws vocabulary '{vocabulary}'; choose one of: {', '.join(VOCABULARIES)}")
    if size not in SIZES:
        raise EdgeGRUError(f"unknown synth-kws size '{size}'; choose one of: {', '.join(SIZES)}")
    path = cache_path(vocabulary, size)
    if path.is_file():
        return load_clips(path)
    clips = generate(vocabulary, SIZES[size])
    save_clips(path, clips)
    for stale in set(path.parent.glob(cache_path(vocabulary, size, "*").name)) - {path}:
        stale.unlink()  # another generator version's clips (about 200 MB at full size)
    return clips
