"""The keyword-spotting front end's fixed parameters, framing and input checks: one source of truth for the
device front end (`mfcc_q15`, CMSIS-DSP's q15 MFCC, and its C build in firmware_sim/frontend) and the float
comparison front end (`mfcc_float`, librosa).

Framing (MLPerf Tiny KWS): 16 kHz int16 audio, a 30 ms window of 480 samples every 20 ms (320 samples),
frame t covering samples [320 t, 320 t + 480); no padding, so a clip of S samples gives
1 + (S - 480) // 320 frames (49 for a 1 s clip) and its last (S - 480) % 320 samples are unused.
Each window is multiplied by a periodic Hann window of 480 points and zero-padded to a 512-point FFT;
40 mel bands between 20 Hz and 4 kHz (HTK mel scale, triangles linear in Hz, peak 1, no area
normalization); natural log of the mel-weighted FFT *magnitude*; DCT-II, first 10 coefficients: rows 1..9
orthonormal, sqrt(2/40) cos(pi i (j + 1/2) / 40), row 0 = 2/40 for every band (C0 = twice the mean log-mel,
where the orthonormal row would give sqrt(40) = 6.3 times it): the loudness term then spans about the
same range as C1..C9 and all ten share one int8 scale (mfcc_q15.CODE_SCALE).
"""

from __future__ import annotations

import numpy as np

from edgegru.errors import EdgeGRUError

SAMPLE_RATE = 16_000  # Hz, int16 samples
WINDOW = 480  # samples, 30 ms
HOP = 320  # samples, 20 ms
HOP_SECONDS = HOP / SAMPLE_RATE  # one frame step of a stream
OVERLAP = WINDOW - HOP  # 160 samples a stream keeps between hops
FFT_LENGTH = 512  # the window zero-padded
MEL_BANDS = 40
MEL_LOW_HZ = 20.0
MEL_HIGH_HZ = 4_000.0
MFCC_COEFFICIENTS = 10
DCT_ROW0 = 2.0 / MEL_BANDS  # the weight of each log-mel band in C0
CLIP_SAMPLES = SAMPLE_RATE  # a 1 s clip


def frame_count(samples: int) -> int:
    """Frames of `samples` samples of audio: 1 + (samples - 480) // 320, 0 when shorter than a window."""
    return 0 if samples < WINDOW else 1 + (samples - WINDOW) // HOP


CLIP_FRAMES = frame_count(CLIP_SAMPLES)  # 49


def check_audio(audio, what: str = "audio") -> np.ndarray:
    """`audio` as int16 [N, S] with S >= 480 (one window); anything else raises EdgeGRUError in one line."""
    array = np.asarray(audio)
    if array.dtype != np.int16:
        raise EdgeGRUError(f"{what} must be int16 samples at {SAMPLE_RATE} Hz, got dtype {array.dtype}")
    if array.ndim != 2:
        raise EdgeGRUError(f"{what} must have shape [clips, samples], got shape {list(array.shape)}")
    if array.shape[1] < WINDOW:
        raise EdgeGRUError(f"{what} needs at least {WINDOW} samples per clip (one window), got {array.shape[1]}")
    return array


def check_chunk(chunk, what: str = "stream input") -> np.ndarray:
    """A stream's input: int16 [k] samples, any k >= 0."""
    array = np.asarray(chunk)
    if array.dtype != np.int16 or array.ndim != 1:
        raise EdgeGRUError(f"{what} must be a 1-D int16 array of samples, got {array.dtype} {list(array.shape)}")
    return array


def frames(audio: np.ndarray) -> np.ndarray:
    """The windows of checked audio [N, S]: a read-only view [N, T, 480]."""
    count = frame_count(audio.shape[1])
    windows = np.lib.stride_tricks.sliding_window_view(audio, WINDOW, axis=1)
    return windows[:, : (count - 1) * HOP + 1 : HOP]


class SampleStream:
    """The stream framing shared by both front ends: push samples, get the windows that are complete.

    It keeps only what a later window needs: fed the first 480 samples and then one 320-sample hop at a
    time, each push completes exactly one window and 160 samples (OVERLAP) are kept between pushes; any
    other chunking gives the same windows in the same order as `frames` over the concatenated audio.
    """

    def __init__(self) -> None:
        self._kept = np.zeros(0, np.int16)

    def push(self, chunk) -> np.ndarray:
        """int16 [k] -> the windows completed by it, int16 [m, 480] (m may be 0)."""
        audio = np.concatenate([self._kept, check_chunk(chunk)])
        count = frame_count(audio.size)
        windows = frames(audio[None])[0].copy() if count else np.zeros((0, WINDOW), np.int16)
        self._kept = audio[count * HOP :].copy()
        return windows

    @property
    def kept(self) -> int:
        """Samples held for the next window."""
        return int(self._kept.size)
