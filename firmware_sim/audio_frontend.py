"""The audio front end the keyword-spotting chain calls, in C and in Python: the one seam between the
chain (`codegen.harness` audio records, `step_session`, `edgegru firmware`) and a front end.

A front end turns a window of int16 audio (16 kHz, `WINDOW` samples, full scale 32768) into `CODES`
int8 codes, the model's input unchanged (x_q == codes).  Frame f covers samples [HOP f, HOP f + WINDOW).
In C it is two functions declared in `header`: `int edgegru_mfcc_q15_init(void)`, called once when the
program starts (non-zero: it exits 1), and `void edgegru_mfcc_q15_frame(const int16_t window[WINDOW],
int8_t codes[CODES])`; `reference` computes the same codes in Python for a whole recording.  `sources`
may be .c or already compiled .o files (a front end built with its own flags).

`mfcc_q15_frontend()` is the MFCC q15 front end (CMSIS-DSP) that `edgegru firmware` uses by default;
tests pass their own `FrontEnd`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgegru.data.kws_frontend import HOP, MFCC_COEFFICIENTS as CODES, WINDOW
from edgegru.data.mfcc_q15 import MfccQ15
from edgegru.errors import EdgeGRUError
from firmware_sim.frontend.mfcc_firmware import frontend_objects

INIT_FUNCTION = "edgegru_mfcc_q15_init"  # the C functions every front end defines
FRAME_FUNCTION = "edgegru_mfcc_q15_frame"


@dataclass(frozen=True)
class FrontEnd:
    """What the chain needs from a front end: the C to build beside the model, and its Python reference."""

    header: str  # included by the harness; declares FRAME_FUNCTION
    sources: tuple[Path, ...]  # .c files to compile into the program
    reference: Callable[[np.ndarray], np.ndarray]  # int16 audio [S] -> int8 codes [frames(S), CODES]
    include_dirs: tuple[Path, ...] = ()
    defines: dict[str, object] = field(default_factory=dict)
    # A front end compiled per target with its own flags: (target, work dir) -> (objects, include dirs).
    compile: Callable[[str, Path], tuple[list[Path], list[Path]]] | None = None


def mfcc_q15_frontend() -> FrontEnd:
    """The MFCC q15 front end (CMSIS-DSP sources, our glue in firmware_sim/frontend/, the Python reference
    in edgegru/data/mfcc_q15.py)."""
    reference = MfccQ15()
    return FrontEnd("edgegru_mfcc_q15.h", (), lambda audio: reference.features(audio[None])[0],
                    compile=frontend_objects)


def whole_hops(audio: np.ndarray) -> np.ndarray:
    """int16 audio [S] -> its whole hops int16 [S // HOP, HOP] (a last partial hop is not sent)."""
    audio = np.asarray(audio)
    if audio.dtype != np.int16 or audio.ndim != 1:
        raise EdgeGRUError(f"audio must be int16 [S], got {audio.dtype} {list(audio.shape)}")
    return audio[: len(audio) // HOP * HOP].reshape(-1, HOP)
