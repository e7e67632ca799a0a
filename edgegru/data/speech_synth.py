"""Single words spoken by Debian's speech synthesizers (espeak-ng, flite), as trimmed int16 audio at 16 kHz.

The programs run as subprocesses, `SYNTH_WORKERS` at a time; results come back in the order asked, so
the same requests give the same audio.  espeak-ng writes 22,050 Hz WAV to stdout; flite writes 8 or
16 kHz WAV to a file (it cannot write to stdout); both are resampled by `decode_wav`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgegru.data.kws_frontend import SAMPLE_RATE
from edgegru.data.wav_io import decode_wav
from edgegru.errors import EdgeGRUError

SYNTH_WORKERS = 2  # synthesizer processes at a time
TRIM_FRACTION = 0.02  # a word spans from the first to the last sample above 2% of its peak ...
TRIM_MARGIN = SAMPLE_RATE // 100  # ... widened by 10 ms on each side
INSTALL_HINT = "run `make toolchain`, or `sudo apt-get install espeak-ng flite`"


@dataclass(frozen=True)
class Utterance:
    """One word by one voice.  espeak-ng: voice "accent+variant", speed in words per minute, pitch 0-99,
    and the data directory whose variants it names (`espeak_variants`; "" = the system's).  flite: voice
    name, speed as flite's duration_stretch (1 = normal, larger = slower), pitch and data unused."""

    engine: str  # "espeak-ng" or "flite"
    voice: str
    text: str
    speed: float
    pitch: float = 0.0
    data: str = ""


def require_programs(engines) -> None:
    """EdgeGRUError naming the Debian package if a synthesizer is not installed."""
    for engine in sorted(set(engines)):
        if shutil.which(engine) is None:
            raise EdgeGRUError(f"the speech synthesizer '{engine}' is not installed (Debian package {engine}): {INSTALL_HINT}")


def _run(args: list[str]) -> bytes:
    result = subprocess.run(args, capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise EdgeGRUError(f"{args[0]} failed ({message[0] if message else f'exit {result.returncode}'}): {INSTALL_HINT}")
    return result.stdout


def _wav_bytes(utterance: Utterance) -> bytes:
    if utterance.engine == "espeak-ng":
        speed, pitch = str(round(utterance.speed)), str(round(utterance.pitch))
        data = [f"--path={utterance.data}"] if utterance.data else []
        return _run(["espeak-ng", *data, "-v", utterance.voice, "-s", speed, "-p", pitch, "--stdout", utterance.text])
    with tempfile.TemporaryDirectory(prefix="edgegru-flite-") as directory:
        out = Path(directory, "word.wav")
        stretch = f"duration_stretch={utterance.speed:.3f}"
        _run(["flite", "-voice", utterance.voice, "--setf", stretch, "-t", utterance.text, "-o", str(out)])
        return out.read_bytes()


def trim(audio: np.ndarray) -> np.ndarray:
    """The word without the synthesizer's leading and trailing silence (see TRIM_FRACTION, TRIM_MARGIN)."""
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > TRIM_FRACTION * np.max(np.abs(audio.astype(np.int32))))
    if len(loud) == 0:
        return audio
    return audio[max(loud[0] - TRIM_MARGIN, 0) : loud[-1] + TRIM_MARGIN + 1]


def speak(utterance: Utterance) -> np.ndarray:
    """int16 [T] at SAMPLE_RATE: the utterance, trimmed."""
    name = f"{utterance.engine} output for '{utterance.text}' ({utterance.voice})"
    return trim(decode_wav(_wav_bytes(utterance), name, SAMPLE_RATE))


def speak_all(utterances: list[Utterance], desc: str = "synthesize") -> list[np.ndarray]:
    """`speak` of every utterance, SYNTH_WORKERS synthesizers at a time, in the order given, with a progress bar."""
    require_programs(u.engine for u in utterances)
    pool = ThreadPoolExecutor(SYNTH_WORKERS)
    try:
        return list(tqdm(pool.map(speak, utterances), total=len(utterances), desc=desc, unit="word"))
    finally:
        pool.shutdown(cancel_futures=True)  # after an error or Ctrl-C, the words not started are dropped
