"""Background noise for keyword clips: made from a seed, and mixed under a word at a stated SNR.

Levels are in dBFS: 20 log10(rms / 32768) of int16 audio.  The SNR of a mixed clip is
10 log10(mean(word^2) / mean(noise^2)), both taken over the samples the word occupies.
"""

from __future__ import annotations

import numpy as np

from edgegru.data.kws_frontend import CLIP_SAMPLES, SAMPLE_RATE
from edgegru.data.wav_io import saturate_int16

NOISE_KINDS = ("white", "pink", "brown", "hum", "babble")
NOISE_SECONDS_PER_KIND = 12  # the noise bed of a split: 5 kinds x 12 s = 60 s, one after the other
NOISE_DBFS = -30.0  # rms level of every kind in the bed
COLORED_NOISE_FLOOR_HZ = 20.0  # pink and brown spectra are flat below this (no DC drift)
HUM_FUNDAMENTALS_HZ = (50.0, 60.0)  # mains hum, one of the two per bed
HUM_TOP_HZ = 1000.0  # harmonics k * f0 up to here, amplitude 1/k, random phases
HUM_FAN_BAND_HZ = (100.0, 1000.0)  # plus fan-like noise band-passed to this band ...
HUM_FAN_DB = -6.0  # ... at this level relative to the harmonics
BABBLE_TALKERS = 6  # overlapped streams of words
BABBLE_GAP_SECONDS = (0.0, 0.3)  # pause between two words of one talker, uniform


def dbfs(x: np.ndarray) -> float:
    """rms level of int16-scaled audio in dBFS."""
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)) / 32768.0**2 + 1e-20)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.mean(np.square(x)) + 1e-20)


def _spectrally_shaped(n: int, rng: np.random.Generator, exponent: float, band=None) -> np.ndarray:
    """White Gaussian noise whose power spectrum is shaped to 1/f^exponent (flat below the floor), or
    kept only inside `band` (Hz)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    gain = np.maximum(f, COLORED_NOISE_FLOOR_HZ) ** (-exponent / 2)
    if band is not None:
        gain = gain * ((f >= band[0]) & (f <= band[1]))
    return _unit_rms(np.fft.irfft(spectrum * gain, n))


def _hum(n: int, rng: np.random.Generator) -> np.ndarray:
    f0 = rng.choice(HUM_FUNDAMENTALS_HZ)
    t = np.arange(n) / SAMPLE_RATE
    harmonics = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, int(HUM_TOP_HZ // f0) + 1))
    fan = _spectrally_shaped(n, rng, 0.0, HUM_FAN_BAND_HZ) * 10 ** (HUM_FAN_DB / 20)
    return _unit_rms(_unit_rms(harmonics) + fan)


def _babble(n: int, rng: np.random.Generator, words: list[np.ndarray]) -> np.ndarray:
    """`BABBLE_TALKERS` streams of randomly chosen words (each at unit rms) laid end to end, summed."""
    out = np.zeros(n)
    for _ in range(BABBLE_TALKERS):
        at = int(rng.integers(0, SAMPLE_RATE))
        while at < n:
            word = _unit_rms(words[rng.integers(len(words))].astype(np.float64))[: n - at]
            out[at : at + len(word)] += word
            at += len(word) + int(rng.uniform(*BABBLE_GAP_SECONDS) * SAMPLE_RATE)
    return _unit_rms(out)


def noise_bed(rng: np.random.Generator, babble_words: list[np.ndarray]) -> np.ndarray:
    """int16 [60 s]: white, pink, brown, hum and babble (of `babble_words`, int16), 12 s each at -30 dBFS."""
    n = NOISE_SECONDS_PER_KIND * SAMPLE_RATE
    kinds = {
        "white": lambda: _unit_rms(rng.standard_normal(n)),
        "pink": lambda: _spectrally_shaped(n, rng, 1.0),
        "brown": lambda: _spectrally_shaped(n, rng, 2.0),
        "hum": lambda: _hum(n, rng),
        "babble": lambda: _babble(n, rng, babble_words),
    }
    scale = 32768.0 * 10 ** (NOISE_DBFS / 20)
    bed = np.concatenate([kinds[kind]() * scale for kind in NOISE_KINDS])
    return saturate_int16(bed)


def noise_window(bed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random 1 s stretch (int16 [CLIP_SAMPLES]) of a noise bed."""
    start = int(rng.integers(0, len(bed) - CLIP_SAMPLES + 1))
    return bed[start : start + CLIP_SAMPLES]


def place_word(word: np.ndarray, offset: int, word_dbfs: float, noise: np.ndarray, snr_db: float | None) -> np.ndarray:
    """int16 [CLIP_SAMPLES]: `word` (int16, at most CLIP_SAMPLES long) scaled to `word_dbfs` rms, starting
    at sample `offset`, over `noise` (int16 [CLIP_SAMPLES]) scaled to `snr_db` below it, or over digital
    silence when `snr_db` is None.  A mix that would clip is scaled down as a whole (the SNR is kept)."""
    word = word.astype(np.float64)
    word *= 32768.0 * 10 ** (word_dbfs / 20) / np.sqrt(np.mean(np.square(word)) + 1e-20)
    clip = np.zeros(CLIP_SAMPLES)
    if snr_db is not None:
        span = noise[offset : offset + len(word)].astype(np.float64)
        noise_gain = np.sqrt(np.mean(np.square(word)) / (np.mean(np.square(span)) + 1e-20) / 10 ** (snr_db / 10))
        clip += noise * noise_gain
    clip[offset : offset + len(word)] += word
    peak = np.max(np.abs(clip))
    if peak > 32767:
        clip *= 32767 / peak
    return np.round(clip).astype(np.int16)
