"""The audio record of the stream harness: the keyword-spotting chain (audio hop -> front end -> int8
codes -> GRU step -> detector push -> event) in the generated program, and the records Python writes
and reads for it.

With a front end (`write_chain_sources(model, directory, detector_params, frontend_header)`: the
keyword-spotting chain; `firmware_sim.audio_frontend` is the seam to the front end), the stream harness
(`harness`, with its detector) also takes audio records:

    stdin:  -3      audio (`AUDIO`): one hop, HOP int16 samples (16 kHz).  The program holds the hop before;
                    when one is held, the frame that starts with it (WINDOW samples: frame f covers samples
                    [HOP f, HOP f + WINDOW) of the stream since the last reset) goes through the front end
                    (`edgegru_mfcc_q15_frame`), its CODES int8 codes through `<name>_step` as the step's
                    features, and the logits through the detector's push, as a feature step would
            -1      reset: also forgets the held hop
    stdout: per audio record (`hop_output_bytes`): int32 framed (1: the hop completed a frame, 0: not), then
            the codes, the logits and states and the event record of that step; all 0 when framed is 0

Four more windows serve audio programs: EDGEGRU_MARK_FRONTEND around the front end's frame alone and
EDGEGRU_MARK_HOP around a whole hop (holding the hop, front end, step, push; not the I/O), besides the
step (default), the push (MARK_DETECTOR) and both (MARK_PIPELINE); the first three count only hops
that complete a frame.  Programs without a front end are the same text as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgegru.errors import EdgeGRUError
from edgegru.quantize import QuantizedModel
from edgegru.stream_detect import DetectorParams, Event
from firmware_sim.audio_frontend import CODES, FRAME_FUNCTION, HOP, INIT_FUNCTION, WINDOW
from firmware_sim.codegen.harness import (DEFAULT_NAME, DETECTOR_MARKERS, MARK_DETECTOR,
                                          NO_DETECTOR_MARKERS, decode_detector_steps, output_bytes, state_writes,
                                          write_sources)

AUDIO = -3  # the header of an audio record
# The instruction-count windows of a chain program, one per build: {part: the define that selects it}.
PART_WINDOWS: dict[str, str | None] = {"frontend": "EDGEGRU_MARK_FRONTEND", "gru": None, "detector": MARK_DETECTOR,
                                       "total": "EDGEGRU_MARK_HOP"}

# The windows of a chain program (module doc); at most one is defined.
AUDIO_MARKERS = """#if defined(EDGEGRU_MARK_FRONTEND) + defined(EDGEGRU_MARK_DETECTOR) + defined(EDGEGRU_MARK_PIPELINE) \\
    + defined(EDGEGRU_MARK_HOP) > 1
#error "define at most one of EDGEGRU_MARK_FRONTEND, _DETECTOR, _PIPELINE and _HOP"
#endif
#if defined(EDGEGRU_MARK_FRONTEND) /* the front end's frame alone */
#define FRONTEND_BEGIN() edgegru_mark_begin()
#define FRONTEND_END() edgegru_mark_end()
#else
#define FRONTEND_BEGIN() ((void)0)
#define FRONTEND_END() ((void)0)
#endif
#if defined(EDGEGRU_MARK_HOP) /* a whole audio hop: buffering, front end, step and push */
#define HOP_BEGIN() edgegru_mark_begin()
#define HOP_END() edgegru_mark_end()
#else
#define HOP_BEGIN() ((void)0)
#define HOP_END() ((void)0)
#endif
#if defined(EDGEGRU_MARK_FRONTEND) || defined(EDGEGRU_MARK_HOP)
#define STEP_BEGIN() ((void)0)
#define STEP_END() ((void)0)
#define DETECT_BEGIN() ((void)0)
#define DETECT_END() ((void)0)
#else
""" + DETECTOR_MARKERS + "#endif\n"
NO_AUDIO_MARKERS = NO_DETECTOR_MARKERS + """#define FRONTEND_BEGIN() ((void)0)
#define FRONTEND_END() ((void)0)
#define HOP_BEGIN() ((void)0)
#define HOP_END() ((void)0)
"""

AUDIO_GLOBALS = """
#define AUDIO_RECORD ({audio})
#define HOP_SAMPLES {hop}
typedef char {name}_frontend_window_check[{window} <= 2 * HOP_SAMPLES ? 1 : -1];
typedef char {name}_frontend_codes_check[{codes} == {upper}_INPUT_SIZE && sizeof({name}_act_t) == 1 ? 1 : -1];
/* [0, HOP): the hop before, once one came; [HOP, 2 HOP): the hop just read.  A frame is the {window}
 * samples from the start of the hop before. */
static int16_t audio[2 * HOP_SAMPLES];
static int audio_primed;
/* An audio record's answer when the hop completes no frame: every field 0. */
static const uint8_t no_frame[{no_frame_bytes}];
"""

AUDIO_INIT = """    int32_t framed;
    if ({init_function}() != 0) {{
        fputs("front end init failed\\n", stderr);
        return 1;
    }}
"""

AUDIO_RECORD = """ else if (header == AUDIO_RECORD) {{
            if (fread(audio + HOP_SAMPLES, sizeof audio[0], HOP_SAMPLES, stdin) != HOP_SAMPLES) {{
                fputs("truncated input\\n", stderr);
                return 1;
            }}
            ended = 0;
            HOP_BEGIN();
            framed = audio_primed;
            if (framed) {{
                FRONTEND_BEGIN();
                {frame_function}(audio, features);
                FRONTEND_END();
                STEP_BEGIN();
                {name}_step(&state, features, logits);
                STEP_END();
                DETECT_BEGIN();
                ended = {name}_detector_push(&detector, logits, &event);
                DETECT_END();
            }}
            memcpy(audio, audio + HOP_SAMPLES, sizeof audio[0] * HOP_SAMPLES);
            audio_primed = 1;
            HOP_END();
            fwrite(&framed, sizeof framed, 1, stdout);
            if (framed) {{
                fwrite(features, sizeof features, 1, stdout);
                fwrite(logits, sizeof logits, 1, stdout);
{state_writes}                write_event(ended, &event);
            }} else {{
                fwrite(no_frame, sizeof no_frame, 1, stdout);
            }}
            header = 0; /* no feature steps follow */
        }}"""

def audio_parts(model: QuantizedModel, name: str, frontend_header: str) -> dict[str, str]:
    """The harness's audio record (module doc): its globals, the record's branch and its windows."""
    if np.dtype(model.tensors["x"].dtype) != np.int8 or model.config["input_size"] != CODES:
        raise EdgeGRUError(f"the audio chain feeds the front end's {CODES} int8 codes to the model as its input; "
                           f"this model takes {model.config['input_size']} {model.tensors['x'].dtype} features")
    upper = name.upper()
    return {
        "includes": "#include <stdint.h>\n#include <string.h>\n",
        "audio_includes": f'#include "{frontend_header}"\n',
        "marker_macros": AUDIO_MARKERS, "no_marker_macros": NO_AUDIO_MARKERS,
        "audio_globals": AUDIO_GLOBALS.format(audio=AUDIO, hop=HOP, window=WINDOW, codes=CODES, name=name,
                                              upper=upper, no_frame_bytes=hop_output_bytes(model) - 4),
        "audio_locals": AUDIO_INIT.format(init_function=INIT_FUNCTION),
        "audio_reset_record": "            audio_primed = 0;\n",
        "audio_record": AUDIO_RECORD.format(name=name, frame_function=FRAME_FUNCTION, state_writes=state_writes(model, 16)),
    }


def write_chain_sources(model: QuantizedModel, directory: Path, detector: DetectorParams, frontend_header: str,
                        name: str = DEFAULT_NAME) -> list[Path]:
    """The model, kernels, detector and a harness with audio records into `directory`: the .c files.  Build
    them with the front end's own sources, include dirs and defines (`audio_frontend.FrontEnd`)."""
    return write_sources(model, directory, name, detector=detector,
                         audio=audio_parts(model, name, frontend_header))


# --- records --------------------------------------------------------------------------------------


def hop_output_bytes(model: QuantizedModel) -> int:
    """Bytes the harness writes per audio record: int32 framed, the codes, one step's outputs and event."""
    return 4 + CODES + output_bytes(model, 1, detector=True)


def audio_records(hops: np.ndarray) -> bytes:
    """int16 hops [n, HOP] -> n audio records."""
    hops = np.asarray(hops)
    if hops.dtype != np.int16 or hops.ndim != 2 or hops.shape[1] != HOP:
        raise EdgeGRUError(f"hops must be int16 [n, {HOP}], got {hops.dtype} {list(hops.shape)}")
    header = np.array([AUDIO], dtype="<i4").tobytes()
    return b"".join(header + hop.astype("<i2").tobytes() for hop in hops)


@dataclass(frozen=True)
class HopOutput:
    """What the program answered one audio record: None everywhere when the hop completed no frame."""

    codes: np.ndarray | None  # int8 [CODES]
    logits: np.ndarray | None  # [C]
    states: list[np.ndarray] | None  # [H] per layer
    event: Event | None  # the event that ended at this frame's step


def decode_hops(model: QuantizedModel, raw: bytes) -> list[HopOutput]:
    """The program's answers to audio records -> one HopOutput per record."""
    size = hop_output_bytes(model)
    if len(raw) % size:
        raise EdgeGRUError(f"the chain wrote {len(raw)} bytes, not a whole number of hop answers of {size}")
    outputs = []
    for record in (raw[i:i + size] for i in range(0, len(raw), size)):
        framed = int(np.frombuffer(record[:4], dtype="<i4")[0])
        if framed not in (0, 1):
            raise EdgeGRUError(f"a hop answer's 'framed' is {framed}, not 0 or 1")
        if not framed:
            outputs.append(HopOutput(None, None, None, None))
            continue
        codes = np.frombuffer(record[4:4 + CODES], dtype=np.int8).copy()
        logits, states, events = decode_detector_steps(model, record[4 + CODES:])
        outputs.append(HopOutput(codes, logits[0], [s[0] for s in states], events[0]))
    return outputs
