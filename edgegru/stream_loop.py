"""The streaming loop: sequences fed through a step function one time step at a time, the state fed back.

Every part of EdgeGRU that runs a GRU step by step goes through `stream`: calibration (the float step
graph), the golden model, the state-error measurement, verification of every backend (a runtime's
interpreter or the generated C program, driven one step at a time), and the streaming engine.

A step function takes the inputs of one time step for a batch of rows, x_t [B, F], and one state
array [B, H] per layer, and returns (outputs, new states): `outputs` is whatever the caller wants to
see of the step (logits, or every tensor of the step graph).  Row i runs for `lengths[i]` steps; past
its length its state is held, so padding never enters the state, and `on_step(t, outputs, active)`
is told which rows were live at step t.  `resets(t)`, if given, is a bool mask [B] of the rows whose
state goes back to the initial state before step t (a state policy for unbounded streams).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

StepFunction = Callable[[np.ndarray, list], tuple[object, list]]
OnStep = Callable[[int, object, np.ndarray], None]
Resets = Callable[[int], np.ndarray]


def stream(step: StepFunction, states: list[np.ndarray], x: np.ndarray, lengths: np.ndarray,
           on_step: OnStep | None = None, resets: Resets | None = None) -> list[np.ndarray]:
    """Feed x [B, T, F] through `step` from `states`; returns every row's state after its last step."""
    lengths = np.asarray(lengths)
    initial = states
    for t in range(int(lengths.max(initial=0))):
        if resets is not None and t > 0:
            back = resets(t)[:, None]
            states = [np.where(back, start, state) for start, state in zip(initial, states)]
        active = t < lengths
        outputs, new_states = step(x[:, t], states)
        states = [np.where(active[:, None], new, old) for new, old in zip(new_states, states)]
        if on_step is not None:
            on_step(t, outputs, active)
    return states

