"""C99 source of the integer smoothing and event detector of `edgegru.stream_detect` (class `Detector`,
params from `prepare_detector`), for a generated model's logits: `detector_c(name, params, activation,
classes)` -> {"<name>_detector.h", "<name>_detector.c"} (self-contained: the model's files are not
needed; `harness.write_sources(model, ..., detector=params)` generates it for the model).

The generated detector is the Python one step for step, on the model's integer logits: the same sums,
top class, margin, runs and events at the same steps (tests/test_firmware_detector.py).  The params
(window, threshold in sum units, min duration, hold-off) and the number of classes are compile-time
constants; the state is one caller-owned struct (`<name>_detector_t`): no heap, no float, only
<stdint.h> and <string.h>, every symbol prefixed by the model name.

    <name>_detector_reset(&det);                       before a stream (as a new `Detector`)
    if (<name>_detector_push(&det, logits, &event))    after every <name>_step: 1 when an event ended
    if (<name>_detector_finish(&det, &event))          at the end of the stream: the open run, if any

Where the C differs from Python's unbounded integers, it is wrap-safe instead (module constants):
- the step counter is uint32 and wraps at 2^32; events carry Python's step numbers modulo 2^32
  (start, end, detected; 2^32 steps is 5.4 years at 25 Hz) and the detector's behaviour does not
  change when it wraps: the ring slot is a separate counter modulo the window (Python: t % window), the
  hold-off is a count-down of blocked steps (Python: t > blocked_until), and a run's length saturates at
  min_duration (only `length >= min_duration` is asked; the end is the step before the closing one);
- the sums of `window` logits: |q| <= 2^15 and window <= 1024 give |sum| <= 2^25, |margin| <= 2^26, so
  int32 holds them; a threshold above every possible margin is clamped to INT32_MAX (no step is hot
  either way).
"""

from __future__ import annotations

import math
import numbers
import re

from edgegru.errors import EdgeGRUError
from edgegru.stream_detect import MAX_WINDOW, DetectorParams
from firmware_sim.codegen.c_text import INT32_MAX
from firmware_sim.codegen.model_facts import C_TYPES

MAX_STEP_PARAM = INT32_MAX  # min_duration and holdoff: uint32 counters compared with them


def detector_threshold(params: DetectorParams) -> int:
    """The threshold as the C compares it: the integer of `prepare_detector` (integer logits), clamped
    to INT32_MAX (every margin is below 2^27, so the clamp changes nothing)."""
    threshold = params.threshold
    if isinstance(threshold, float) and threshold.is_integer():
        threshold = int(threshold)
    if not isinstance(threshold, numbers.Integral) or isinstance(threshold, bool):
        raise EdgeGRUError(f"the C detector needs an integer threshold in the units of the sums (prepare_detector "
                           f"with the logits' scale), got {threshold!r}")
    if threshold < 0:
        raise EdgeGRUError(f"detector threshold must be >= 0, got {threshold}")
    return min(int(threshold), INT32_MAX)


def check_detector(params: DetectorParams) -> None:
    """EdgeGRUError unless the C detector can hold `params` (those of `prepare_detector` always fit)."""
    for field, value, low, high in (("window", params.window, 1, MAX_WINDOW),
                                    ("min_duration", params.min_duration, 1, MAX_STEP_PARAM),
                                    ("holdoff", params.holdoff, 0, MAX_STEP_PARAM)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not low <= value <= high:
            raise EdgeGRUError(f"detector {field} must be an integer in [{low}, {high}], got {value!r}")
    detector_threshold(params)


def detector_c(name: str, params: DetectorParams, activation: str, classes: int) -> dict[str, str]:
    """{`<name>_detector.h`, `<name>_detector.c`}: the detector of `classes` logits of `activation`
    ("int8" or "int16": the model's `tensors["logits"].dtype`) under the model's name (module doc)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise EdgeGRUError(f"model name {name!r} is not a C identifier; use letters, digits and '_'")
    if activation not in C_TYPES:
        raise EdgeGRUError(f"the C detector takes int8 or int16 logits, not {activation!r}")
    if not isinstance(classes, numbers.Integral) or classes < 1:
        raise EdgeGRUError(f"the detector needs at least one class, got {classes!r}")
    check_detector(params)
    act, classes = C_TYPES[activation], int(classes)
    return {f"{name}_detector.h": _header(name, params, act, classes),
            f"{name}_detector.c": _source(name, act, classes, params.background)}


def _header(name: str, params: DetectorParams, act: str, classes: int) -> str:
    upper = name.upper()
    threshold = detector_threshold(params)
    clamped = " (clamped: above every margin)" if params.threshold > INT32_MAX else ""
    return f"""/* {name}_detector: smoothing and event detection on {name}'s logits, the integer detector of
 * edgegru/stream_detect.py step for step.  Generated by firmware_sim/codegen/detector_source.py; do not edit.
 *
 * Smoothing: S[c] = the sum of class c's logit (as quantized, zero point included: it cancels in the
 * margin) over the last {upper}_DETECTOR_WINDOW steps; the first steps sum what they have.  Top class k
 * (ties to the lowest index), margin m = S[k] - max over c != k of S[c] (0 with one class).  A step is
 * hot when m >= {upper}_DETECTOR_THRESHOLD and no hold-off blocks it.  Consecutive hot steps of one class
 * form a run; a run of at least {upper}_DETECTOR_MIN_DURATION steps is an event, reported at the step
 * after its end (or by {name}_detector_finish).  Within one step an open run is closed first (the
 * step is not hot, or its top class changed), then a run may start, unless the top class is a
 * background class.  After an event no run starts for {upper}_DETECTOR_HOLDOFF steps past its end.
 *
 * Ranges: |logit| <= 2^15 and window <= 1024, so |S[c]| <= 2^25 and 0 <= margin of a run <= 2^26: int32.
 * Steps are counted in uint32 and wrap at 2^32: an event's start, end and detected are its step numbers
 * modulo 2^32; the detection itself is unaffected by the wrap (ring slot modulo the window, hold-off as
 * a count-down, run length saturated at the min duration).  No heap, no float; not reentrant per
 * detector (one detector_t per stream).
 */
#ifndef {upper}_DETECTOR_H
#define {upper}_DETECTOR_H

#include <stdint.h>

#define {upper}_DETECTOR_WINDOW {params.window}u /* steps of the moving sums, 1..{MAX_WINDOW} */
#define {upper}_DETECTOR_THRESHOLD {threshold} /* margin threshold in sum units (logit units x window){clamped} */
#define {upper}_DETECTOR_MIN_DURATION {params.min_duration}u /* hot steps before a run is an event, >= 1 */
#define {upper}_DETECTOR_HOLDOFF {params.holdoff}u /* steps after an event's end before a run may start */
#define {upper}_DETECTOR_CLASSES {classes} /* the model's classes */
#define {upper}_DETECTOR_STATE_BYTES {detector_state_bytes(params, act, classes)} /* sizeof({name}_detector_t) */

/* An event: a run of hot steps of one class, at least the min duration long. */
typedef struct {{
    int32_t cls;       /* the class */
    uint32_t start;    /* its first step (mod 2^32; the first pushed step is 0) */
    uint32_t end;      /* its last step */
    int32_t peak;      /* the largest margin of the run, in sum units */
    uint32_t detected; /* start + min duration - 1: the step at which a device knows */
}} {name}_event_t;

/* The detector's state; owned by the caller, set by {name}_detector_reset. */
typedef struct {{
    {act} ring[{upper}_DETECTOR_WINDOW][{upper}_DETECTOR_CLASSES]; /* the last window's logits */
    int32_t sums[{upper}_DETECTOR_CLASSES]; /* per class, the sum of the ring: |S| <= 2^25 */
    uint32_t t;           /* steps pushed (mod 2^32) */
    uint32_t slot;        /* ring row of step t: t modulo the window, counted apart from t */
    uint32_t blocked;     /* steps from t on that the hold-off still blocks */
    int32_t run_cls;      /* the open run's class, -1 when no run is open */
    uint32_t run_start;   /* its first step */
    uint32_t run_length;  /* its steps, saturated at the min duration */
    int32_t run_peak;     /* its largest margin */
    int32_t top;          /* the last step's top class of the sums */
    int32_t margin;       /* and its margin */
}} {name}_detector_t;

/* Empty ring, zero sums, step 0, no run, no hold-off (a new stream). */
void {name}_detector_reset({name}_detector_t *det);

/* One step's logits [{upper}_DETECTOR_CLASSES] (from {name}_step): 1 when an event ended at this step
 * (the run ended at the previous step), *event filled in; 0 otherwise, *event untouched. */
int {name}_detector_push({name}_detector_t *det, const {act} *logits, {name}_event_t *event);

/* The end of the stream: closes an open run; 1 when it is an event (*event filled in), else 0. */
int {name}_detector_finish({name}_detector_t *det, {name}_event_t *event);

#endif
"""


def _source(name: str, act: str, classes: int, background: tuple[int, ...]) -> str:
    upper = name.upper()
    if any(not 0 <= c < classes for c in background):
        raise EdgeGRUError(f"detector background classes {list(background)} must lie in [0, {classes})")
    flags = ", ".join("1" if c in background else "0" for c in range(classes))
    if classes > 1:
        top_search = f"""    best = det->sums[0];
    second = INT32_MIN;
    for (c = 1; c < {upper}_DETECTOR_CLASSES; ++c) {{ /* strict >: ties keep the lowest index on top */
        const int32_t s = det->sums[c];
        if (s > best) {{
            second = best;
            best = s;
            top = c;
        }} else if (s > second) {{
            second = s;
        }}
    }}
    margin = best - second; /* both within +-2^25 */
"""
        locals_ = "    int32_t best, second, margin, top = 0;\n"
    else:
        top_search = "    margin = 0; /* one class: no runner-up (Python: max(..., default=S[top])) */\n"
        locals_ = "    int32_t margin, top = 0;\n"
    return f"""/* {name}_detector: see {name}_detector.h.  Generated by firmware_sim/codegen/detector_source.py. */
#include "{name}_detector.h"

#include <string.h>

#ifndef {upper}_DETECTOR_FIRST_STEP /* tests only: the step number of the first push (wrap tests) */
#define {upper}_DETECTOR_FIRST_STEP 0u
#endif

/* Classes that never start a run (keyword spotting: what is heard between the words). */
static const uint8_t {name}_detector_background[{upper}_DETECTOR_CLASSES] = {{{flags}}};

/* The header's sizes are the C types' (a negative array size fails the build otherwise). */
typedef char {name}_detector_bytes_check[sizeof({name}_detector_t) == {upper}_DETECTOR_STATE_BYTES ? 1 : -1];

void {name}_detector_reset({name}_detector_t *det)
{{
    memset(det, 0, sizeof *det);
    det->t = (uint32_t)({upper}_DETECTOR_FIRST_STEP);
    det->slot = det->t % {upper}_DETECTOR_WINDOW;
    det->run_cls = -1;
}}

/* Close the open run at step t (it ended at t - 1): an event when it is long enough. */
static int {name}_detector_close({name}_detector_t *det, {name}_event_t *event)
{{
    const int32_t cls = det->run_cls;
    det->run_cls = -1;
    if (det->run_length < {upper}_DETECTOR_MIN_DURATION) {{
        return 0;
    }}
    event->cls = cls;
    event->start = det->run_start;
    event->end = det->t - 1u;
    event->peak = det->run_peak;
    event->detected = det->run_start + ({upper}_DETECTOR_MIN_DURATION - 1u);
    det->blocked = {upper}_DETECTOR_HOLDOFF; /* steps t .. end + holdoff */
    return 1;
}}

int {name}_detector_push({name}_detector_t *det, const {act} *logits, {name}_event_t *event)
{{
    {act} *row = det->ring[det->slot];
{locals_}    int32_t c;
    int ended = 0, hot;
    for (c = 0; c < {upper}_DETECTOR_CLASSES; ++c) {{
        det->sums[c] += (int32_t)logits[c] - (int32_t)row[c];
        row[c] = logits[c];
    }}
{top_search}    det->top = top;
    det->margin = margin;
    hot = margin >= {upper}_DETECTOR_THRESHOLD && det->blocked == 0u;
    if (det->run_cls >= 0 && !(hot && top == det->run_cls)) {{
        ended = {name}_detector_close(det, event);
        hot = hot && det->blocked == 0u; /* an event's hold-off may block this very step */
    }}
    if (det->run_cls < 0 && hot && !{name}_detector_background[top]) {{
        det->run_cls = top;
        det->run_start = det->t;
        det->run_length = 0u;
        det->run_peak = margin;
    }}
    if (det->run_cls >= 0) {{
        if (det->run_length < {upper}_DETECTOR_MIN_DURATION) {{
            det->run_length += 1u;
        }}
        if (margin > det->run_peak) {{
            det->run_peak = margin;
        }}
    }}
    det->t += 1u; /* wraps at 2^32 (header) */
    det->slot = det->slot + 1u == {upper}_DETECTOR_WINDOW ? 0u : det->slot + 1u;
    if (det->blocked != 0u) {{
        det->blocked -= 1u;
    }}
    return ended;
}}

int {name}_detector_finish({name}_detector_t *det, {name}_event_t *event)
{{
    return det->run_cls >= 0 ? {name}_detector_close(det, event) : 0;
}}
"""


def detector_state_bytes(params: DetectorParams, act: str, classes: int) -> int:
    """RAM of `<name>_detector_t`: the ring (padded to a word), the sums and nine 32-bit words (the
    build checks it against sizeof)."""
    itemsize = 1 if act == "int8_t" else 2
    ring = params.window * classes * itemsize
    return math.ceil(ring / 4) * 4 + 4 * classes + 4 * 9
