"""The device front end: CMSIS-DSP's q15 MFCC (`arm_mfcc_q15`), run on the host through the `cmsisdsp`
Python package, then a fixed integer step to the GRU's int8 input. The C build of the same CMSIS-DSP
sources (firmware_sim/frontend) gives the same int16 MFCC and int8 codes, bit for bit.

Tables (built once here from kws_frontend's parameters; CMSIS-DSP only defines their format):
  window   q15 [512]: periodic Hann of 480 points, round(w * 32768) clipped to 32767, zeros after 480
  filters  40 triangles over FFT bins 0..256 (bin k at k * 16000 / 512 Hz), stored sparse: for band m the
           first non-zero bin `filter_pos[m]`, the count `filter_lengths[m]` and the weights, q15
           round(w * 32768) clipped to 32767, concatenated band after band
  dct      q15 [10, 40] row-major: row 0 all 2/40 (C0 = twice the mean log-mel), rows 1..9
           orthonormal DCT-II sqrt(2/40) cos(pi i (j + 1/2) / 40); all |.| <= 0.224, rounded to q15

What `arm_mfcc_q15` does with one int16 window x zero-padded to 512 (CMSIS-DSP 1.10.3,
Source/TransformFunctions/arm_mfcc_q15.c), and the bound of every intermediate:
  1. m = max |x| (int16); unless m is 0 or 32767, x is scaled to full scale (x * 32767 / m, int16).
  2. x * window (q15 product, int16).
  3. 512-point real FFT (arm_rfft_q15: scaled down by 512, int16 real and imaginary parts).
  4. |X_k| for k = 0..256 (arm_cmplx_mag_q15: q2.14, [0, 32767]).
  5. band energy: sum_k |X_k| w_mk (int64), + 537 (a floor of 2^-20.9 against log 0), >> 10, saturated
     to int32 [0, 2^31 - 1]; then multiplied back by m / 32768 (int32) when step 1 scaled.
  6. natural log (arm_vlog_q31, q5.26), plus (9 + 2 + 10) ln 2 to undo the shifts of 3-5, >> 19:
     q8.7, saturated to int16 (log-mel in [-256, 256) nats, 1/128 nat per unit).
  7. DCT (arm_mat_vec_mult_q15: int64 sum of q15 x q8.7 products, >> 15, saturated to int16):
     the MFCC in q8.7, int16, 1/128 nat per unit (MFCC_Q15_SCALE).
So one MFCC unit means 1/128 of a natural-log unit of the mel-weighted spectral magnitude of the q15
(x / 32768) windowed signal, the FFT taken without normalization (see mfcc_float for the same in float).

The integer step (int16 MFCC q -> int8 code c), the same for all ten coefficients:
  c = clamp((q + 8) >> 4, -128, 127)        (CODE_SHIFT = 4)
an arithmetic shift right rounding half up, with saturation; q + 8 is in [-32768, 32775], int32.
One code means CODE_SCALE = 2^4 / 128 = 1/8 nat: for the quantizer the GRU's input is int8 with
scale CODE_SCALE and zero point 0, and the codes pass into the GRU unchanged. On synthetic speech
(espeak-ng words at three levels over faint noise) no code saturates and |C1..C9| stays under 70 codes
(99th percentile); C0 runs from -122 (digital silence, the floor of step 5) to about +40 (loud noise);
loud chirps and white noise saturate 0.3 % of C1..C9 (tests/test_mfcc_q15.py measures it).
"""

from __future__ import annotations

import numpy as np

from edgegru.data.kws_frontend import (
    DCT_ROW0,
    FFT_LENGTH,
    MEL_BANDS,
    MEL_HIGH_HZ,
    MEL_LOW_HZ,
    MFCC_COEFFICIENTS,
    SAMPLE_RATE,
    WINDOW,
    SampleStream,
    check_audio,
    frames,
)
from edgegru.errors import EdgeGRUError

MFCC_Q15_SCALE = 1.0 / 128  # nat per unit of arm_mfcc_q15's int16 output (q8.7)
CODE_SHIFT = 4
CODE_SCALE = (1 << CODE_SHIFT) * MFCC_Q15_SCALE  # nat per int8 code


# --- tables ---------------------------------------------------------------------------------------


def to_q15(values: np.ndarray) -> np.ndarray:
    """Real values in [-1, 1] -> q15 int16: round half away from zero of x * 32768, clipped to [-32768, 32767]."""
    scaled = np.asarray(values, np.float64) * 32768.0
    return np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5), -32768, 32767).astype(np.int16)


def hann_window() -> np.ndarray:
    """float64 [512]: periodic Hann of 480 points, 0.5 - 0.5 cos(2 pi n / 480), then zeros."""
    window = np.zeros(FFT_LENGTH)
    n = np.arange(WINDOW)
    window[:WINDOW] = 0.5 - 0.5 * np.cos(2 * np.pi * n / WINDOW)
    return window


def hz_to_mel(hz):
    """HTK mel scale: 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_filterbank() -> np.ndarray:
    """float64 [40, 257]: band m rises linearly in Hz from edge m to 1 at edge m + 1 and falls to 0 at edge
    m + 2, the 42 edges equally spaced in mel from 20 Hz to 4 kHz (as librosa.filters.mel, htk=True, norm=None)."""
    edges = mel_to_hz(np.linspace(hz_to_mel(MEL_LOW_HZ), hz_to_mel(MEL_HIGH_HZ), MEL_BANDS + 2))
    bins = np.arange(FFT_LENGTH // 2 + 1) * SAMPLE_RATE / FFT_LENGTH
    rising = (bins[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    falling = (edges[2:, None] - bins[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    return np.maximum(0.0, np.minimum(rising, falling))


def dct_matrix() -> np.ndarray:
    """float64 [10, 40]: row 0 DCT_ROW0 (2/40) everywhere, rows 1..9 the orthonormal DCT-II."""
    i = np.arange(MFCC_COEFFICIENTS)[:, None]
    j = np.arange(MEL_BANDS)[None, :]
    rows = np.cos(np.pi * i * (j + 0.5) / MEL_BANDS) * np.sqrt(2.0 / MEL_BANDS)
    rows[0] = DCT_ROW0
    return rows


class MfccTables:
    """The q15 tables `arm_mfcc_init_q15` takes, in its formats (see the module docstring)."""

    def __init__(self) -> None:
        self.window = to_q15(hann_window())
        weights = to_q15(mel_filterbank())
        positions, lengths, coefficients = [], [], []
        for band in weights:
            nonzero = np.flatnonzero(band)
            if nonzero.size == 0:
                raise EdgeGRUError("a mel band has no FFT bin: the front end's parameters are inconsistent")
            first, last = int(nonzero[0]), int(nonzero[-1])
            positions.append(first)
            lengths.append(last - first + 1)
            coefficients.append(band[first : last + 1])
        self.filter_pos = np.array(positions, np.uint32)
        self.filter_lengths = np.array(lengths, np.uint32)
        self.filter_coefs = np.concatenate(coefficients).astype(np.int16)
        self.dct = to_q15(dct_matrix()).reshape(-1)


# --- the integer step -----------------------------------------------------------------------------


def mfcc_q15_to_int8(mfcc: np.ndarray) -> np.ndarray:
    """int16 [..., 10] q8.7 MFCC -> int8 codes: (q + 2^(shift-1)) >> shift, clamped to [-128, 127]."""
    q = np.asarray(mfcc, np.int32)
    return np.clip((q + (1 << (CODE_SHIFT - 1))) >> CODE_SHIFT, -128, 127).astype(np.int8)


# --- the front end --------------------------------------------------------------------------------


class MfccQ15:
    """CMSIS-DSP's q15 MFCC, prepared once (tables and the `arm_mfcc_instance_q15`), run on many clips."""

    def __init__(self) -> None:
        try:
            import cmsisdsp
        except ImportError:
            raise EdgeGRUError("the q15 MFCC front end needs the Python package cmsisdsp (pip install cmsisdsp)") from None
        self._dsp = cmsisdsp
        self.tables = MfccTables()
        self._instance = cmsisdsp.arm_mfcc_instance_q15()
        status = cmsisdsp.arm_mfcc_init_q15(
            self._instance, FFT_LENGTH, MEL_BANDS, MFCC_COEFFICIENTS, self.tables.dct, self.tables.filter_pos,
            self.tables.filter_lengths, self.tables.filter_coefs, self.tables.window,
        )  # fmt: skip
        if status != 0:
            raise EdgeGRUError(f"arm_mfcc_init_q15 failed with status {status}")
        self._padded = np.zeros(FFT_LENGTH, np.int16)
        self._scratch = np.zeros(FFT_LENGTH, np.int32)  # the complex FFT output, 2 x 512 int16

    def window_mfcc(self, window: np.ndarray) -> np.ndarray:
        """int16 [480] -> q8.7 MFCC int16 [10]."""
        self._padded[:WINDOW] = window
        status, mfcc = self._dsp.arm_mfcc_q15(self._instance, self._padded, self._scratch)
        if status != 0:
            raise EdgeGRUError(f"arm_mfcc_q15 failed with status {status}")
        return np.asarray(mfcc, np.int16)

    def mfcc(self, audio) -> np.ndarray:
        """int16 [N, S] audio -> q8.7 MFCC int16 [N, T, 10], T = kws_frontend.frame_count(S)."""
        windows = frames(check_audio(audio))
        out = np.empty(windows.shape[:2] + (MFCC_COEFFICIENTS,), np.int16)
        for n in range(windows.shape[0]):
            for t in range(windows.shape[1]):
                out[n, t] = self.window_mfcc(windows[n, t])
        return out

    def features(self, audio) -> np.ndarray:
        """int16 [N, S] audio -> the GRU's input, int8 [N, T, 10] (scale CODE_SCALE, zero point 0)."""
        return mfcc_q15_to_int8(self.mfcc(audio))

    def stream(self) -> MfccQ15Stream:
        return MfccQ15Stream(self)


class MfccQ15Stream:
    """The front end fed as audio arrives: the same int8 frames as `MfccQ15.features` over the same audio.

    Fed the first 480 samples and then one 320-sample hop at a time, each push gives one frame and the
    stream keeps the last 160 samples; other chunkings give the same frames (kws_frontend.SampleStream).
    """

    def __init__(self, front_end: MfccQ15) -> None:
        self._front_end = front_end
        self._samples = SampleStream()

    def push(self, chunk) -> np.ndarray:
        """int16 [k] samples -> int8 [m, 10], the frames they complete (m may be 0)."""
        windows = self._samples.push(chunk)
        mfcc = np.array([self._front_end.window_mfcc(w) for w in windows], np.int16).reshape(-1, MFCC_COEFFICIENTS)
        return mfcc_q15_to_int8(mfcc)
