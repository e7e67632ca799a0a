"""The device front end's Python reference (CMSIS-DSP's q15 MFCC via cmsisdsp): framing, tables, the
integer step, batch = stream, errors, and how much of the int8 range synthetic speech and noise use."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from edgegru.data.kws_frontend import CLIP_FRAMES, HOP, OVERLAP, WINDOW, frame_count
from edgegru.data.mfcc_q15 import CODE_SCALE, CODE_SHIFT, MfccQ15, MfccTables, mfcc_q15_to_int8
from edgegru.errors import EdgeGRUError


def synthetic_clips(seed: int = 0) -> np.ndarray:
    """int16 [6, 16000]: white noise at two levels, a loud and a quiet chirp, a tone burst, silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(16_000) / 16_000
    chirp = np.sin(2 * np.pi * (100 * t + 3_000 * t**2))
    burst = np.where((t > 0.3) & (t < 0.6), 6_000 * np.sin(2 * np.pi * 440 * t), 0) + rng.normal(0, 20, t.size)
    clips = [rng.normal(0, 1_000, t.size), rng.normal(0, 30, t.size), 20_000 * chirp, 300 * chirp, burst, 0 * t]
    return np.clip(np.round(clips), -32768, 32767).astype(np.int16)


def espeak_clip(text: str, tmp_path: Path, gain: float = 1.0) -> np.ndarray:
    """int16 [16000]: espeak-ng saying `text`, resampled 22050 -> 16000 Hz, over faint noise."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from scipy.signal import resample_poly

    path = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    with wave.open(str(path)) as f:
        rate, samples = f.getframerate(), np.frombuffer(f.readframes(f.getnframes()), np.int16)
    speech = resample_poly(samples.astype(np.float64), 16_000, rate)[:16_000] * gain
    clip = np.random.default_rng(len(text)).normal(0, 30 * gain, 16_000)
    clip[: speech.size] += speech
    return np.clip(np.round(clip), -32768, 32767).astype(np.int16)


@pytest.fixture(scope="module")
def front_end():
    return MfccQ15()


def test_framing_is_mlperf_tiny_kws():
    assert (WINDOW, HOP, OVERLAP) == (480, 320, 160)
    assert CLIP_FRAMES == 49 and frame_count(479) == 0 and frame_count(480) == 1 and frame_count(799) == 1


def test_tables_have_cmsis_dsp_formats():
    tables = MfccTables()
    assert tables.window.dtype == np.int16 and tables.window.shape == (512,)
    assert (tables.window[480:] == 0).all() and tables.window.max() == 32767
    assert tables.filter_pos.dtype == np.uint32 and tables.filter_lengths.shape == (40,)
    assert (tables.filter_lengths > 0).all() and tables.filter_coefs.size == tables.filter_lengths.sum()
    assert (tables.filter_pos + tables.filter_lengths <= 257).all()
    assert tables.dct.dtype == np.int16 and tables.dct.shape == (400,)
    assert (tables.dct[:40] == 1638).all()  # C0: 2/40 in q15


def test_features_shape_dtype_and_step(front_end):
    audio = synthetic_clips()
    mfcc, codes = front_end.mfcc(audio), front_end.features(audio)
    assert mfcc.dtype == np.int16 and mfcc.shape == (6, 49, 10)
    assert codes.dtype == np.int8 and codes.shape == (6, 49, 10)
    expected = np.clip((mfcc.astype(np.int32) + (1 << (CODE_SHIFT - 1))) >> CODE_SHIFT, -128, 127)
    assert (codes == expected).all()
    assert CODE_SCALE == 1 / 8
    assert list(mfcc_q15_to_int8(np.array([-32768, -2056, -2055, -9, -8, 7, 8, 2039, 2040, 32767], np.int16))) == [
        -128, -128, -128, -1, 0, 0, 1, 127, 127, 127]  # fmt: skip


def test_the_stream_gives_the_batch_frames(front_end):
    audio = synthetic_clips(1)[[0, 2, 4]]
    batch = front_end.features(audio)
    for clip, expected in zip(audio, batch):
        stream = front_end.stream()
        got = [stream.push(clip[:WINDOW])]
        for start in range(WINDOW, clip.size - HOP + 1, HOP):
            got.append(stream.push(clip[start : start + HOP]))
            assert got[-1].shape == (1, 10)
            assert stream._samples.kept == OVERLAP
        assert (np.concatenate(got) == expected).all()
        other = front_end.stream()  # hops from sample 0, and odd chunks: the same frames
        chunks = [other.push(clip[i : i + 123]) for i in range(0, clip.size, 123)]
        assert (np.concatenate(chunks) == expected).all()


def test_saturation_on_speech_and_noise(front_end, tmp_path):
    speech = np.stack([espeak_clip(word, tmp_path, gain) for word in ("yes", "stop", "seven")
                       for gain in (0.1, 1.0)])  # fmt: skip
    codes = front_end.features(speech).astype(np.int32)
    saturated = np.isin(codes, (-128, 127))
    assert saturated.mean() < 0.001, f"{100 * saturated.mean():.2f} % of speech codes saturate"
    assert 40 <= np.percentile(np.abs(codes[..., 1:]), 99) <= 110  # C1..C9 use the range
    noise = front_end.features(synthetic_clips()).astype(np.int32)
    assert np.isin(noise, (-128, 127)).mean() < 0.01
    assert noise[..., 0].min() >= -128 + 5  # the floor of digital silence is inside the range


@pytest.mark.parametrize(
    "audio, message",
    [
        (np.zeros((2, 16000), np.float32), "int16"),
        (np.zeros(16000, np.int16), "shape"),
        (np.zeros((1, 100), np.int16), "at least 480"),
    ],
)
def test_bad_audio_is_one_line_error(front_end, audio, message):
    with pytest.raises(EdgeGRUError, match=message) as error:
        front_end.features(audio)
    assert "\n" not in str(error.value)


def test_bad_stream_input_is_an_error(front_end):
    with pytest.raises(EdgeGRUError, match="1-D int16"):
        front_end.stream().push(np.zeros((2, 320), np.int16))
