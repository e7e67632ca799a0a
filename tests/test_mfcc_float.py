"""The float comparison front end (librosa): framing, streaming, the filters, and its units against mfcc_q15."""

from __future__ import annotations

import numpy as np
import pytest

from edgegru.data.mfcc_float import MfccFloat
from edgegru.data.mfcc_q15 import MfccQ15, mel_filterbank
from edgegru.errors import EdgeGRUError
from tests.test_mfcc_q15 import synthetic_clips


@pytest.fixture(scope="module")
def front_end():
    return MfccFloat()


def test_shape_and_same_filters_as_the_q15_tables(front_end):
    features = front_end.features(synthetic_clips())
    assert features.dtype == np.float32 and features.shape == (6, 49, 10)
    assert np.abs(front_end.mel_filters - mel_filterbank()).max() < 1e-6


def test_the_stream_gives_the_batch_frames(front_end):
    clip = synthetic_clips(2)[0]
    batch = front_end.features(clip[None])[0]
    stream = front_end.stream()
    got = [stream.push(clip[:480])] + [stream.push(clip[s : s + 320]) for s in range(480, 16000 - 319, 320)]
    assert np.abs(np.concatenate(got) - batch).max() < 1e-4


def test_same_units_as_the_q15_front_end_on_noise(front_end):
    noise = synthetic_clips()[:1]  # white noise: every band well above the q15 floor
    difference = front_end.features(noise) - MfccQ15().mfcc(noise) / 128
    assert np.abs(difference.mean(axis=(0, 1))).max() < 0.05
    assert np.abs(difference).mean() < 0.1


def test_bad_audio_is_an_error(front_end):
    with pytest.raises(EdgeGRUError, match="int16"):
        front_end.features(np.zeros((1, 16000)))
