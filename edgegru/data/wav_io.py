"""WAV files in and out: mono int16 at the rate the caller asks for.

`read_wav` reads RIFF/WAVE PCM 8-bit unsigned, 16-bit and 32-bit signed integers and 32-bit float
(also when wrapped in WAVE_FORMAT_EXTENSIBLE), and refuses everything else with one line saying so.
Samples become int16 full scale (8-bit: (u - 128) * 256; 32-bit int: rounded >> 16; float: round(x *
32768), clipped to [-32768, 32767]).  A file at another rate is resampled with an exact integer ratio
(`scipy.signal.resample_poly`, its default Kaiser-windowed anti-aliasing filter).
"""

from __future__ import annotations

import struct
import wave
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from edgegru.atomic import write_atomic
from edgegru.errors import EdgeGRUError

PCM = 1
IEEE_FLOAT = 3
EXTENSIBLE = 0xFFFE


def _chunks(data: bytes, path: Path) -> dict[bytes, bytes]:
    """The RIFF/WAVE file's top-level chunks by id (the first of each id)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise EdgeGRUError(f"{path} is not a WAV file (no RIFF/WAVE header); give a PCM .wav file")
    chunks: dict[bytes, bytes] = {}
    at = 12
    while at + 8 <= len(data):
        chunk_id, size = data[at : at + 4], struct.unpack("<I", data[at + 4 : at + 8])[0]
        chunks.setdefault(chunk_id, data[at + 8 : at + 8 + size])
        at += 8 + size + (size & 1)  # chunks are padded to an even size
    if b"fmt " not in chunks or b"data" not in chunks or len(chunks[b"fmt "]) < 16:
        raise EdgeGRUError(f"{path} is a corrupt WAV file (no complete 'fmt ' and 'data' chunks); re-export it")
    return chunks


def _samples_int16(fmt: bytes, payload: bytes, path: Path) -> tuple[np.ndarray, int]:
    """Decode the data chunk to int16 mono; returns (samples, rate)."""
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]  # first two bytes of the sub-format GUID
    if channels != 1:
        raise EdgeGRUError(f"{path} has {channels} channels; only mono is read: mix it down (sox in.wav -c 1 out.wav)")
    if rate <= 0:
        raise EdgeGRUError(f"{path} states a sample rate of {rate} Hz; re-export it")
    width = bits // 8
    usable = len(payload) // max(width, 1) * max(width, 1)
    if (tag, bits) == (PCM, 8):
        x = (np.frombuffer(payload[:usable], np.uint8).astype(np.int16) - 128) * 256
    elif (tag, bits) == (PCM, 16):
        x = np.frombuffer(payload[:usable], "<i2").astype(np.int16)
    elif (tag, bits) == (PCM, 32):
        x = (np.frombuffer(payload[:usable], "<i4").astype(np.int64) + (1 << 15)) >> 16
    elif (tag, bits) == (IEEE_FLOAT, 32):
        x = np.round(np.frombuffer(payload[:usable], "<f4").astype(np.float64) * 32768.0)
    else:
        kind = {PCM: "integer", IEEE_FLOAT: "float"}.get(tag, f"format tag {tag:#x}")
        raise EdgeGRUError(
            f"{path} holds {bits}-bit {kind} samples; supported: 8-bit unsigned, 16/32-bit integer, 32-bit float PCM"
        )
    if len(x) == 0:
        raise EdgeGRUError(f"{path} holds no samples; remove it or record it again")
    return saturate_int16(x), rate


def saturate_int16(x: np.ndarray) -> np.ndarray:
    """Audio samples (integers, or floats in int16 units) rounded to the nearest integer and saturated to int16."""
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def resample_int16(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """int16 audio from `from_rate` to `to_rate` (Hz) by the exact ratio to_rate/from_rate, rounded and clipped."""
    if from_rate == to_rate:
        return x
    common = gcd(from_rate, to_rate)
    y = resample_poly(x.astype(np.float64), to_rate // common, from_rate // common)
    return saturate_int16(y)


def read_wav(path, rate: int = 16000) -> np.ndarray:
    """int16 mono samples of the WAV file at `path`, resampled to `rate` Hz if it was recorded at another."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise EdgeGRUError(f"cannot read {path}: {error.strerror}") from None
    return decode_wav(data, path, rate)


def decode_wav(data: bytes, name, rate: int = 16000) -> np.ndarray:
    """`read_wav` of WAV bytes already in memory (a synthesizer's stdout); `name` is used in messages.

    A streamed WAV whose header states an unknown length (0x7fffffff) is read to the end of the bytes."""
    chunks = _chunks(data, name)
    x, file_rate = _samples_int16(chunks[b"fmt "], chunks[b"data"], name)
    return resample_int16(x, file_rate, rate)


def write_wav(path, audio: np.ndarray, rate: int) -> Path:
    """Write int16 mono `audio` [T] as a 16-bit PCM WAV at `rate` Hz, atomically."""
    audio = np.asarray(audio)
    if audio.dtype != np.int16 or audio.ndim != 1:
        raise EdgeGRUError(f"write_wav takes 1-D int16 audio, got {audio.dtype} of shape {audio.shape}")

    def write(temp: Path) -> None:
        with wave.open(str(temp), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(audio.astype("<i2").tobytes())

    return write_atomic(Path(path), write)
