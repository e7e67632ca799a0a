"""Smoothing and event detection on a stream of class scores, one step at a time, as a device does it.

Smoothing: the sum of each class's logit over the last `window` steps (a moving average of the
log-posteriors up to a constant; the first steps sum what they have).  The detector looks at the top
class k of the sums and its margin m = S_k - max_{c != k} S_c (ties go to the lowest class index).
A step is *hot* when m >= threshold and the hold-off of the last event has passed.  Consecutive hot
steps of one class form a run; a run of at least `min_duration` steps is an event, reported when it
ends: (class, start step, end step, peak margin), detected at step start + min_duration - 1.  After
an event, no run starts for `holdoff` steps past its end.  No run starts on a `background` class
(keyword spotting: `_silence_` and `_unknown_` are what is heard between words, not events, and
must not hold off the word that follows).

On integer logits (int8 or int16, one scale) the whole detector is integer: the sums of W logits fit
int32 for W <= 32767 (|q| <= 2^15), the zero point cancels in the margin, and the threshold is
prepared once in those units: ceil(threshold * W / logits_scale).  On float logits the same code
runs on floats.  The generated C detector mirrors this file step for step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from edgegru.data import Dataset
from edgegru.data.kws import background_classes
from edgegru.errors import EdgeGRUError
from edgegru.golden import run_sequences
from edgegru.quantize import QuantizedModel

MAX_WINDOW = 1024


@dataclass(frozen=True)
class DetectorConfig:
    """What a user sets, in steps and logit units."""

    window: int = 25  # steps of the moving sum (1 s of `watch` at 25 Hz)
    threshold: float = 2.0  # mean margin of the top class's logit over the runner-up's, over the window
    min_duration: int = 25  # hot steps before a run is an event
    holdoff: int = 25  # steps after an event's end before a new run may start
    background: tuple[int, ...] = ()  # classes that never start a run

    def __post_init__(self):
        object.__setattr__(self, "background", tuple(int(c) for c in self.background))  # from JSON: a list


@dataclass(frozen=True)
class DetectorParams:
    """Prepared once: the threshold in the units of the sums (int for integer logits)."""

    window: int
    threshold: int | float
    min_duration: int
    holdoff: int
    background: tuple[int, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "background", tuple(int(c) for c in self.background))  # from JSON: a list


def as_record(settings: DetectorConfig | DetectorParams) -> dict:
    """The settings as a JSON file gives them back (the background as a list)."""
    return {**asdict(settings), "background": list(settings.background)}


@dataclass(frozen=True)
class Event:
    cls: int
    start: int
    end: int
    peak: int | float  # largest margin of the run, in the units of the sums
    detected: int  # the step at which the run reached min_duration: when a device knows

    def as_list(self, recording: int) -> list:
        return [recording, self.cls, self.start, self.end, self.peak]


def prepare_detector(config: DetectorConfig, logits_scale: float | None) -> DetectorParams:
    """Check the settings and put the threshold in sum units (`logits_scale` None: float logits)."""
    if not 1 <= config.window <= MAX_WINDOW:
        raise EdgeGRUError(f"detector window must be 1..{MAX_WINDOW} steps, got {config.window}")
    if config.min_duration < 1 or config.holdoff < 0 or not math.isfinite(config.threshold) or config.threshold < 0:
        raise EdgeGRUError("detector: min duration >= 1, hold-off >= 0 and a finite threshold >= 0 are required")
    total = config.threshold * config.window
    threshold = total if logits_scale is None else int(math.ceil(total / logits_scale - 1e-9))
    return DetectorParams(config.window, threshold, config.min_duration, config.holdoff,
                          tuple(sorted(int(c) for c in config.background)))


def dataset_detector(dataset: Dataset, given: DetectorConfig | dict | None = None) -> DetectorConfig:
    """The detector for a run on `dataset`: `given` whole (a DetectorConfig), or the dataset's defaults
    (`Dataset.detector_defaults` over `DetectorConfig()`) with `given`'s entries (a dict) over them; the
    background classes are the dataset's (keyword spotting: all but the words) unless set."""
    if isinstance(given, DetectorConfig):
        settings = asdict(given)
    else:
        settings = {**asdict(DetectorConfig()), **dataset.detector_defaults, **(given or {})}
    if not settings["background"]:
        settings["background"] = background_classes(dataset.class_names)
    return DetectorConfig(**settings)


class Detector:
    """Push one step's logits at a time; `push` and `finish` return the event that just ended, if any."""

    def __init__(self, params: DetectorParams, num_classes: int, integer: bool):
        self.params = params
        self.integer = integer
        self.ring = [[0] * num_classes for _ in range(params.window)]
        self.sums = [0] * num_classes
        self.t = 0
        self.run: list | None = None  # [class, start, length, peak]
        self.blocked_until = -1
        self.margin = 0
        self.top = 0

    def push(self, logits) -> Event | None:
        values = [int(v) for v in logits] if self.integer else [float(v) for v in logits]
        slot = self.ring[self.t % self.params.window]
        for c, value in enumerate(values):
            self.sums[c] += value - slot[c]
            slot[c] = value
        top = max(range(len(self.sums)), key=self.sums.__getitem__)
        margin = self.sums[top] - max((s for c, s in enumerate(self.sums) if c != top), default=self.sums[top])
        self.top, self.margin = top, margin
        event = None
        if self.run is not None and not (self._hot(margin) and top == self.run[0]):
            event = self._close()
        if self.run is None and self._hot(margin) and top not in self.params.background:
            self.run = [top, self.t, 0, margin]
        if self.run is not None:
            self.run[2] += 1
            self.run[3] = max(self.run[3], margin)
        self.t += 1
        return event

    def finish(self) -> Event | None:
        """The end of the stream closes an open run."""
        return self._close() if self.run is not None else None

    def _hot(self, margin) -> bool:
        return margin >= self.params.threshold and self.t > self.blocked_until

    def _close(self) -> Event | None:
        cls, start, length, peak = self.run
        self.run = None
        if length < self.params.min_duration:
            return None
        end = start + length - 1
        self.blocked_until = end + self.params.holdoff
        return Event(cls, start, end, peak, start + self.params.min_duration - 1)


def golden_events(model: QuantizedModel, params: DetectorParams, x_q: np.ndarray, lengths: np.ndarray,
                  on_lane_step=None) -> list[list[Event]]:
    """The integer detector's events on the golden model's logits, every row of `x_q` [B, T, F] streamed
    whole from the initial state (what a device does), each to its length, its last run closed at the end.
    `on_lane_step(row, tensors)`, if given, sees every row's step (`tensors` of the whole batch)."""
    detectors = [Detector(params, model.config["num_classes"], integer=True) for _ in range(len(x_q))]
    events: list[list[Event]] = [[] for _ in detectors]

    def on_step(t, tensors, active):
        for i in np.flatnonzero(active):
            if on_lane_step is not None:
                on_lane_step(i, tensors)
            event = detectors[i].push(tensors["logits"][i])
            if event is not None:
                events[i].append(event)

    run_sequences(model, x_q, lengths, on_step=on_step)
    for found, detector in zip(events, detectors):
        last = detector.finish()
        found.extend([last] if last is not None else [])
    return events


def detect(params: DetectorParams, logits: np.ndarray, integer: bool) -> tuple[list[Event], np.ndarray]:
    """Events of a whole stream of logits [T, C], and the smoothed top class of every step."""
    detector = Detector(params, logits.shape[1], integer)
    events, top = [], np.zeros(len(logits), dtype=np.int64)
    for t, row in enumerate(logits):
        event = detector.push(row)
        top[t] = detector.top
        if event is not None:
            events.append(event)
    last = detector.finish()
    return events + ([last] if last is not None else []), top
