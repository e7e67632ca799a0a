"""Streams with known truth, and how well a stream of decisions matches it.

A session is one subject's recordings streamed back to back in a fixed, seeded order, so that the
stream has transitions as a day of wearing the watch does; each recording is a true segment of its
class, and every frame is labelled by the recording it comes from.

Event rule: an event matches a true segment of its class when their step intervals overlap.
Precision = events that match some segment / events; recall = segments matched by at least one event
/ segments; F1 their harmonic mean.  Latency of a recalled segment = the detection step of its first
matching event minus the segment's first step (negative when an event that began earlier runs on
into it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgegru.data import Recording
from edgegru.stream_detect import Event


@dataclass(frozen=True)
class Session:
    subject: int
    signal: np.ndarray  # raw float32 [T, F]
    segments: list[tuple[int, int, int]]  # (first step, last step, class)

    @property
    def frame_labels(self) -> np.ndarray:
        labels = np.empty(len(self.signal), dtype=np.int64)
        for start, end, cls in self.segments:
            labels[start: end + 1] = cls
        return labels


def make_sessions(recordings: list[Recording], seed: int = 0) -> list[Session]:
    """One session per subject (ascending), its recordings in an order fixed by `seed`."""
    rng = np.random.default_rng(seed)
    sessions = []
    for subject in sorted({r.subject for r in recordings}):
        own = [r for r in recordings if r.subject == subject]
        order = rng.permutation(len(own))
        segments, start = [], 0
        for i in order:
            segments.extend((start + first, start + last, cls) for first, last, cls in own[i].truth)
            start += len(own[i].signal)
        sessions.append(Session(subject, np.concatenate([own[i].signal for i in order]), segments))
    return sessions


def event_scores(events: list[list[Event]], sessions: list[Session]) -> dict:
    """Precision, recall, F1 and latencies of the events of each session against its segments."""
    matched_events = total_events = recalled = total_segments = 0
    latencies = []
    for session_events, session in zip(events, sessions):
        total_events += len(session_events)
        matched_events += sum(any(e.cls == cls and e.start <= end and start <= e.end
                                  for start, end, cls in session.segments) for e in session_events)
        for start, end, cls in session.segments:
            total_segments += 1
            hits = [e for e in session_events if e.cls == cls and e.start <= end and start <= e.end]
            if hits:
                recalled += 1
                latencies.append(min(e.detected for e in hits) - start)
    precision = matched_events / total_events if total_events else 0.0
    recall = recalled / total_segments if total_segments else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"event_precision": round(precision, 4), "event_recall": round(recall, 4), "event_f1": round(f1, 4),
            "median_latency_steps": float(np.median(latencies)) if latencies else None,
            "events_total": total_events, "segments_total": total_segments}
