"""One unbounded stream through any backend's step, with a state policy, giving per-step class scores.

A state policy decides what happens to the state of a stream that never ends:
- `none`: the state is carried from the first step to the last;
- `reset every N`: the state goes back to the initial state every N steps;
- `K staggered, N`: K copies of the state run side by side, copy j reset every N steps at offset
  j N / K; each step's scores come from the copy with the most steps behind it since its last reset
  (at least N - N/K of context once the stream is N steps old), at K times the compute.

The stream runs through `stream_loop.stream` with the copies as rows and the policy's resets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgegru.errors import EdgeGRUError
from edgegru.stream_loop import StepFunction, stream


@dataclass(frozen=True)
class StatePolicy:
    period: int | None = None  # steps between resets; None: never reset
    copies: int = 1

    @property
    def name(self) -> str:
        if self.period is None:
            return "none"
        return f"reset every {self.period}" if self.copies == 1 else f"{self.copies} staggered, reset every {self.period}"

    @property
    def spec(self) -> str:
        """The form `parse_policy` reads."""
        if self.period is None:
            return "none"
        return f"reset:{self.period}" if self.copies == 1 else f"staggered:{self.period}:{self.copies}"

    def offsets(self) -> np.ndarray:
        return np.array([j * self.period // self.copies for j in range(self.copies)]) if self.period else np.zeros(1, int)

    def resets(self, t: int) -> np.ndarray:
        """Rows whose state goes back to the initial state before step t."""
        if self.period is None:
            return np.zeros(self.copies, dtype=bool)
        return (t >= self.offsets()) & ((t - self.offsets()) % self.period == 0)

    def chosen(self, t: int) -> int:
        """The copy whose scores count at step t: the one with the most steps since its last reset."""
        if self.copies == 1:
            return 0
        offsets = self.offsets()
        # before its first reset, a copy has run since step 0
        return int(np.argmax(np.where(t >= offsets, (t - offsets) % self.period, t)))


def parse_policy(text: str) -> StatePolicy:
    """`none`, `reset:N` or `staggered:N:K` (K >= 2 copies, N >= K steps)."""
    if text == "none":
        return StatePolicy()
    match = re.fullmatch(r"reset:(\d+)|staggered:(\d+):(\d+)", text)
    if match is None:
        raise EdgeGRUError(f"unknown state policy '{text}'; use none, reset:N or staggered:N:K")
    if match.group(1):
        period, copies = int(match.group(1)), 1
    else:
        period, copies = int(match.group(2)), int(match.group(3))
        if copies < 2 or period < copies:
            raise EdgeGRUError(f"staggered:{period}:{copies} needs K >= 2 copies and N >= K steps")
    if period < 1:
        raise EdgeGRUError("a reset period must be at least 1 step")
    return StatePolicy(period, copies)


def rowwise(steps: list[StepFunction]) -> StepFunction:
    """Rows of a batch through one-row step functions (one each: a C program holds one state)."""
    def step(x, states):
        outputs, new_states = zip(*(row_step(x[i: i + 1], [s[i: i + 1] for s in states])
                                    for i, row_step in enumerate(steps)))
        return np.concatenate(outputs), [np.concatenate(layer) for layer in zip(*new_states)]
    return step


def stream_lanes(step: StepFunction, initial_states: list[np.ndarray], lanes: list[tuple[np.ndarray, StatePolicy]],
                 on_scores: Callable[[int, int, np.ndarray], None]) -> None:
    """Lanes of (x [T, F] as the step takes it, policy) through `step`, side by side as rows of one batch
    (each lane's K copies are K rows); on_scores(lane, t, scores [C]) per lane and step.

    `step(x [rows, F], states) -> (scores [rows, C], states)`; `initial_states` are one row's.  Rows of
    a lane that has ended are held (masked), so lanes may differ in length.
    """
    rows = [(lane, copy) for lane, (_, policy) in enumerate(lanes) for copy in range(policy.copies)]
    first_row = np.cumsum([0] + [policy.copies for _, policy in lanes])
    lengths = np.array([len(lanes[lane][0]) for lane, _ in rows])
    x = np.zeros((len(rows), int(lengths.max(initial=0)), lanes[0][0].shape[1]), dtype=lanes[0][0].dtype)
    for r, (lane, _) in enumerate(rows):
        x[r, : lengths[r]] = lanes[lane][0]

    def resets(t: int) -> np.ndarray:
        return np.concatenate([policy.resets(t) for _, policy in lanes])

    def on_step(t, scores, active):
        for lane, (signal, policy) in enumerate(lanes):
            if t < len(signal):
                on_scores(lane, t, scores[first_row[lane] + policy.chosen(t)])

    states = [np.repeat(s, len(rows), axis=0) for s in initial_states]
    stream(step, states, x, lengths, on_step, resets=resets)
