"""How well keyword events match the words of a long stream: recall, false alarms per hour, the curve.

Rule (after MLPerf Tiny's streaming wake-word scoring): a keyword segment is *found* when an event of
its class is detected (`Event.detected`) from the segment's first frame up to `tolerance` frames after
its last; every keyword event that finds no segment of its class is a false alarm (a wrong word, a word
heard in noise, a second event for one word).  Events of the background classes (`_silence_`,
`_unknown_`) are neither.  The curve repeats the detection over thresholds on the same logits: false
rejects (1 - recall) against false alarms per hour.

Recall ceiling: an event of class k is detected at a step of its run, and a run lasts only while k is the
top class of the smoothed sums, so a word can be found only if its class tops the sums at some step of
its span (first frame to `tolerance` after the last).  The share of words for which it does bounds the
recall of every threshold, duration and hold-off of a detector with that window: when it is below the
target recall, no setting of the detector reaches the target; the model must change.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edgegru.stream_detect import DetectorParams, Event, detect
from edgegru.stream_metrics import Session

TOLERANCE_SECONDS = 0.5
TARGET_RECALL = 0.9


def keyword_scores(events: list[list[Event]], sessions: list[Session], keywords: set[int], tolerance: int,
                   step_seconds: float) -> dict:
    """Found words, misses and false alarms of `events` (per session) against the keyword segments."""
    found = false_alarms = words = 0
    for session_events, session in zip(events, sessions):
        targets = [(start, end + tolerance, cls) for start, end, cls in session.segments if cls in keywords]
        words += len(targets)
        hit = set()
        for event in session_events:
            if event.cls not in keywords:
                continue
            match = next((i for i, (start, end, cls) in enumerate(targets)
                          if cls == event.cls and start <= event.detected <= end and i not in hit), None)
            if match is None:
                false_alarms += 1
            else:
                hit.add(match)
        found += len(hit)
    hours = sum(len(s.signal) for s in sessions) * step_seconds / 3600
    return {"keywords": words, "detections": found, "misses": words - found, "false_alarms": false_alarms,
            "recall": round(found / words, 4) if words else None, "hours": round(hours, 4),
            "false_alarms_per_hour": round(false_alarms / hours, 2) if hours else None}


def recall_ceiling(tops: list[np.ndarray], sessions: list[Session], keywords: set[int], tolerance: int
                   ) -> float | None:
    """The share of keyword segments whose class is the smoothed top class (`tops`, per session, from
    `detect`) at some step from their first frame to `tolerance` steps after their last."""
    reachable = words = 0
    for top, session in zip(tops, sessions):
        for start, end, cls in session.segments:
            if cls in keywords:
                words += 1
                reachable += bool(np.any(top[start: end + tolerance + 1] == cls))
    return round(reachable / words, 4) if words else None


def keyword_curve(logits: list[np.ndarray], sessions: list[Session], params: DetectorParams, integer: bool,
                  thresholds: list, keywords: set[int], tolerance: int, step_seconds: float) -> list[dict]:
    """Recall and false alarms per hour at every threshold (in the detector's sum units), same logits."""
    curve = []
    for threshold in thresholds:
        at = replace(params, threshold=threshold)
        events = [detect(at, session_logits, integer)[0] for session_logits in logits]
        scores = keyword_scores(events, sessions, keywords, tolerance, step_seconds)
        curve.append({"threshold": threshold, "recall": scores["recall"],
                      "false_alarms_per_hour": scores["false_alarms_per_hour"]})
    return curve


def false_alarms_at_recall(curve: list[dict], recall: float = TARGET_RECALL) -> float | None:
    """The fewest false alarms per hour among the thresholds that reach `recall` (None: none reaches it)."""
    reaching = [point["false_alarms_per_hour"] for point in curve if (point["recall"] or 0) >= recall]
    return min(reaching) if reaching else None
