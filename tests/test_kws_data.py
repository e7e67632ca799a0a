"""Keyword-spotting audio: WAV reading, noise and mixing."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import wavfile

from edgegru.data.kws_clips import CLIP_SAMPLES, SAMPLE_RATE
from edgegru.data.kws_noise import NOISE_DBFS, NOISE_KINDS, NOISE_SECONDS_PER_KIND, dbfs, noise_bed, place_word
from edgegru.data.wav_io import read_wav, write_wav
from edgegru.errors import EdgeGRUError


def sine(freq: float, rate: int, seconds: float, amplitude: float = 10000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


# --- WAV files ---


def test_wav_roundtrip_and_formats(tmp_path):
    x = sine(440, SAMPLE_RATE, 0.1)
    write_wav(tmp_path / "a.wav", x, SAMPLE_RATE)
    assert np.array_equal(read_wav(tmp_path / "a.wav"), x)
    wavfile.write(tmp_path / "u8.wav", SAMPLE_RATE, np.array([0, 128, 255], np.uint8))
    assert read_wav(tmp_path / "u8.wav").tolist() == [-32768, 0, 32512]
    wavfile.write(tmp_path / "i32.wav", SAMPLE_RATE, np.array([-(2**31), 2**16 * 1000, 2**31 - 1], np.int32))
    assert read_wav(tmp_path / "i32.wav").tolist() == [-32768, 1000, 32767]
    wavfile.write(tmp_path / "f32.wav", SAMPLE_RATE, np.array([-1.0, 0.5, 1.5], np.float32))
    assert read_wav(tmp_path / "f32.wav").tolist() == [-32768, 16384, 32767]


def test_wav_at_another_rate_keeps_its_frequency(tmp_path):
    write_wav(tmp_path / "8k.wav", sine(440, 8000, 1.0), 8000)
    x = read_wav(tmp_path / "8k.wav", rate=SAMPLE_RATE)
    assert len(x) == SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64)))
    assert np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[np.argmax(spectrum)] == pytest.approx(440, abs=1)
    assert np.std(x[1000:-1000]) == pytest.approx(10000 / np.sqrt(2), rel=0.02)  # level kept


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: wavfile.write(p, SAMPLE_RATE, np.zeros((100, 2), np.int16)), "2 channels"),
        (lambda p: wavfile.write(p, SAMPLE_RATE, np.zeros(0, np.int16)), "no samples"),
        (lambda p: p.write_bytes(b"not a wav file at all"), "not a WAV file"),
        (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00"), "corrupt"),
        (lambda p: wavfile.write(p, SAMPLE_RATE, np.zeros(10, np.float64)), "64-bit float"),
    ],
    ids=["stereo", "empty", "not-wav", "truncated", "float64"],
)
def test_wav_errors_are_one_clear_line(tmp_path, make, message):
    make(tmp_path / "bad.wav")
    with pytest.raises(EdgeGRUError, match=message) as error:
        read_wav(tmp_path / "bad.wav")
    assert "\n" not in str(error.value)
    with pytest.raises(EdgeGRUError, match="cannot read"):
        read_wav(tmp_path / "absent.wav")


# --- noise and mixing ---


def test_place_word_achieves_the_snr():
    rng = np.random.default_rng(1)
    bed = noise_bed(rng, [sine(300, SAMPLE_RATE, 0.3)])
    word, offset = sine(700, SAMPLE_RATE, 0.4, 3000.0), 5000
    for kind in range(len(NOISE_KINDS)):
        noise = bed[kind * NOISE_SECONDS_PER_KIND * SAMPLE_RATE :][:CLIP_SAMPLES]
        for snr in (5.0, 12.0, 20.0):
            clean = place_word(word, offset, -20.0, noise, None).astype(np.float64)
            noisy = place_word(word, offset, -20.0, noise, snr).astype(np.float64)
            span = slice(offset, offset + len(word))
            measured = 10 * np.log10(np.mean(clean[span] ** 2) / np.mean((noisy - clean)[span] ** 2))
            assert measured == pytest.approx(snr, abs=0.1), NOISE_KINDS[kind]
            assert dbfs(clean[span]) == pytest.approx(-20.0, abs=0.05)
            assert not clean[: offset - 1].any() and not clean[span.stop + 1 :].any()


def test_noise_bed_kinds_are_at_their_level():
    bed = noise_bed(np.random.default_rng(2), [sine(300, SAMPLE_RATE, 0.3)])
    assert bed.dtype == np.int16 and len(bed) == len(NOISE_KINDS) * NOISE_SECONDS_PER_KIND * SAMPLE_RATE >= 60 * SAMPLE_RATE
    for part in np.split(bed, len(NOISE_KINDS)):
        assert dbfs(part) == pytest.approx(NOISE_DBFS, abs=0.1)
