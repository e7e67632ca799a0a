"""The float comparison front end: librosa's STFT, mel filters and DCT with the framing and parameters of
kws_frontend, in the same units as the device front end (mfcc_q15): MFCC in nats of the log mel-weighted
FFT magnitude of x / 32768, C0 = 2 x the mean log-mel. So `features(audio)` is close to
`MfccQ15().mfcc(audio) / 128` (the q15 path loses precision in quiet frames and has a floor of about
-7.6 nat per band where this has log(1e-9)).

librosa's STFT with center=False frames n_fft = 512 samples and centres the 480-point window in them;
padding the clip with 16 zeros on each side puts window t on samples [320 t, 320 t + 480), as kws_frontend.
"""

from __future__ import annotations

import numpy as np

from edgegru.data.kws_frontend import (
    DCT_ROW0,
    FFT_LENGTH,
    HOP,
    MEL_BANDS,
    MEL_HIGH_HZ,
    MEL_LOW_HZ,
    MFCC_COEFFICIENTS,
    SAMPLE_RATE,
    WINDOW,
    SampleStream,
    check_audio,
)
from edgegru.errors import EdgeGRUError

LOG_FLOOR = 1e-9  # added to the mel magnitude before the log


def _librosa():
    try:
        import librosa
    except ImportError:
        raise EdgeGRUError("the float MFCC front end needs librosa (pip install librosa)") from None
    return librosa


class MfccFloat:
    """librosa's log-mel -> MFCC, prepared once (the mel filter matrix), batch over clips."""

    def __init__(self) -> None:
        self._librosa = _librosa()
        self.mel_filters = self._librosa.filters.mel(
            sr=SAMPLE_RATE, n_fft=FFT_LENGTH, n_mels=MEL_BANDS, fmin=MEL_LOW_HZ, fmax=MEL_HIGH_HZ, htk=True, norm=None
        )  # [40, 257]

    def features(self, audio) -> np.ndarray:
        """int16 [N, S] -> float32 [N, T, 10] MFCC in nats (T = kws_frontend.frame_count(S))."""
        x = check_audio(audio).astype(np.float32) / 32768.0
        pad = (FFT_LENGTH - WINDOW) // 2
        x = np.pad(x, ((0, 0), (pad, pad)))
        spectrum = np.abs(self._librosa.stft(x, n_fft=FFT_LENGTH, hop_length=HOP, win_length=WINDOW,
                                             window="hann", center=False))  # [N, 257, T]
        log_mel = np.log(np.einsum("mk,nkt->nmt", self.mel_filters, spectrum) + LOG_FLOOR)
        mfcc = self._librosa.feature.mfcc(S=log_mel, n_mfcc=MFCC_COEFFICIENTS, dct_type=2, norm="ortho")
        mfcc[:, 0] = log_mel.mean(axis=1) * (DCT_ROW0 * MEL_BANDS)  # C0 = 2 x mean log-mel, as mfcc_q15
        return np.ascontiguousarray(mfcc.transpose(0, 2, 1), dtype=np.float32)

    def stream(self) -> MfccFloatStream:
        return MfccFloatStream(self)


class MfccFloatStream:
    """The float front end fed as audio arrives: the same frames as `features` over the same audio."""

    def __init__(self, front_end: MfccFloat) -> None:
        self._front_end = front_end
        self._samples = SampleStream()

    def push(self, chunk) -> np.ndarray:
        """int16 [k] -> float32 [m, 10], the frames they complete."""
        windows = self._samples.push(chunk)
        if windows.shape[0] == 0:
            return np.zeros((0, MFCC_COEFFICIENTS), np.float32)
        return self._front_end.features(windows)[:, 0]
