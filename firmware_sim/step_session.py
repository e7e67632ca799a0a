"""The generated C program as a step function: one persistent process, on the host or on QEMU, driven
one step at a time through the stream harness (`codegen.harness`).

    with StepSession(model, "cortex-m4", exe, count_instructions=True) as session:
        session.reset()
        logits, states = session.step(x_q)  # x_q [1, F] -> logits [1, C], [state [1, H] per layer]
        result = session.close()            # RunResult: exit code, one instruction count per step, stack peak

`exe` is the harness program built from `harness.write_sources` (`StepSession.build` does both;
EDGEGRU_MARKERS is defined, so that QEMU can count each `<name>_step` call).  Every call writes
exactly one record and reads exactly the bytes the harness answers it with, so neither side can wait
on the other; every call has a timeout.  The program is killed on a timeout, on an exception inside
the `with` block, and when it dies (EdgeGRUError with its exit code or fault and its stderr).  The
outputs are those of a batch run over the same records, bit for bit, and so are the counts.

`step_function()` adapts a session to the step interface of a generic streaming loop
(`step(x_q, states) -> (logits, states)`, as `export.verify.stream_backend` calls it).

With the event detector of `edgegru.stream_detect` compiled in (`StepSession.build(..., detector=params)`,
or a program from `write_sources(..., detector=params)` started with `detector=True`), every step also
runs `<name>_detector_push`:

    with StepSession.build(model, "cortex-m4", out_dir, detector=params) as session:
        logits, states, events = session.step_detect(x_q)  # events: per step, the Event that ended or None
        last = session.finish()                            # the end of the stream: the open run's Event or None

`reset()` resets the detector with the model; `step()` works too (the events of its steps are kept in
`last_events`).  The step markers stay around `<name>_step` alone unless `defines` moves them
(`harness.MARK_DETECTOR`, `harness.MARK_PIPELINE`).

With a front end too (`StepSession.build(..., detector=params, frontend=frontend)`: the keyword-spotting
chain of `codegen.audio_harness`), the session takes audio hops:

    with StepSession.build(model, "cortex-m4", out_dir, detector=params, frontend=frontend) as session:
        outputs = session.hops(audio_hops)  # int16 [n, HOP] -> per hop a HopOutput: codes, logits, states, event
        last = session.finish()

`reset()` also forgets the held hop; `defines` may move the window to the front end or the whole hop
(`audio_harness.PART_WINDOWS`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgegru.errors import EdgeGRUError
from edgegru.quantize import QuantizedModel
from edgegru.stream_detect import DetectorParams, Event
from firmware_sim.audio_frontend import FrontEnd
from firmware_sim.codegen.audio_harness import HopOutput, audio_records, decode_hops, hop_output_bytes, write_chain_sources
from firmware_sim.codegen.harness import (DEFAULT_NAME, EVENT_RECORD_BYTES, decode_detector_steps, decode_events,
                                          decode_steps, finish_record, output_bytes, reset_record, steps_record,
                                          write_sources)
from firmware_sim.device.build import build
from firmware_sim.device.execute import RunResult, start
from firmware_sim.device.targets import Target, get_target

MARKER_DEFINES: dict[str, object] = {"EDGEGRU_MARKERS": None}


class StepSession:
    """The harness program `exe` of `model`, started on `target`, stepped from Python (module doc)."""

    def __init__(self, model: QuantizedModel, target: str | Target, exe: Path, *, count_instructions: bool = False,
                 timeout_s: float = 60.0, detector: bool = False, audio: bool = False):
        self.model = model
        self.detector = detector or audio  # the program was generated with a detector (it writes event records)
        self.audio = audio  # the program was generated with a front end (it takes audio records)
        self.last_events: list[Event | None] = []  # with a detector: the events of the last step() call
        self.target = get_target(target)
        self.timeout_s = timeout_s
        self.dtype = np.dtype(model.tensors["x"].dtype)
        self.features = model.config["input_size"]
        self.initial_states = [np.full((1, model.config["hidden"]), model.tensors[h_in].zero_point, dtype=self.dtype)
                               for h_in, _ in model.states]
        self._held = self.initial_states  # the program's state: it starts reset
        self._program = start(self.target, exe, count_instructions=count_instructions)

    @classmethod
    def build(cls, model: QuantizedModel, target: str | Target, out_dir: Path, name: str = DEFAULT_NAME, *,
              defines: dict[str, object] | None = None, count_instructions: bool = False,
              timeout_s: float = 60.0, detector: DetectorParams | None = None,
              frontend: FrontEnd | None = None) -> StepSession:
        """Generate the sources into `out_dir` (with `detector`: the event detector too; with `frontend` as
        well: the audio chain), build them for `target` (with the step markers) and start."""
        if frontend is None:
            exe = build_model(model, target, out_dir, name, defines, detector)
        else:
            exe = build_chain(model, target, out_dir, detector, frontend, name, defines)
        return cls(model, target, exe, count_instructions=count_instructions, timeout_s=timeout_s,
                   detector=detector is not None, audio=frontend is not None)

    def __enter__(self) -> StepSession:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self._program.kill()
        elif self._program.running:
            self.close()

    def reset(self) -> None:
        """Every state element to its zero point (the real 0), as before a new sequence."""
        self._program.exchange(reset_record(), 0, self.timeout_s)
        self._held = self.initial_states

    def step(self, x_q: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """x_q [n, F] (n >= 1; one step: [1, F]), quantized in the model's activation dtype -> (logits
        [n, C], [state [n, H] per layer]): the outputs of n consecutive steps, sent as one record."""
        logits, states, self.last_events = self._steps(x_q)
        return logits, states

    def step_detect(self, x_q: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], list[Event | None]]:
        """As `step`, with the detector's answer to every step: (logits [n, C], [state [n, H] per layer],
        [the Event that ended at that step, or None] * n).  Event steps count from the last reset, modulo
        2^32."""
        self._require_detector("step_detect")
        logits, states, self.last_events = self._steps(x_q)
        return logits, states, self.last_events

    def finish(self) -> Event | None:
        """The end of the stream for the detector (`<name>_detector_finish`): the open run's Event, if it is
        one.  The model's state and the detector are kept (`reset()` starts a new stream)."""
        self._require_detector("finish")
        raw = self._program.exchange(finish_record(), EVENT_RECORD_BYTES, self.timeout_s)
        return decode_events(raw)[0]

    def hops(self, samples: np.ndarray) -> list[HopOutput]:
        """int16 audio hops [n, HOP] (n >= 1), sent as n audio records -> per hop what the chain answered:
        the codes, logits, states and event of the frame it completed, or None for each."""
        if not self.audio:
            raise EdgeGRUError("hops needs a program built with a front end (StepSession.build(..., "
                               "detector=params, frontend=frontend))")
        records = audio_records(samples)
        if not records:
            raise EdgeGRUError("hops needs at least one hop")
        return decode_hops(self.model, self._program.exchange(records, len(samples) * hop_output_bytes(self.model),
                                                              self.timeout_s))

    def _steps(self, x_q: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], list[Event | None]]:
        x_q = np.asarray(x_q)
        if x_q.dtype != self.dtype or x_q.ndim != 2 or x_q.shape[1] != self.features or len(x_q) < 1:
            raise EdgeGRUError(f"x_q must be {self.dtype} [n, {self.features}] with n >= 1 (quantize_features), "
                               f"got {x_q.dtype} {list(x_q.shape)}")
        raw = self._program.exchange(steps_record(x_q), output_bytes(self.model, len(x_q), self.detector),
                                     self.timeout_s)
        if self.detector:
            logits, states, events = decode_detector_steps(self.model, raw)
        else:
            (logits, states), events = decode_steps(self.model, raw), []
        self._held = [s[-1:] for s in states]
        return logits, states, events

    def _require_detector(self, what: str) -> None:
        if not self.detector:
            raise EdgeGRUError(f"{what} needs a program built with the detector (StepSession.build(..., "
                               "detector=params), or StepSession(..., detector=True))")

    def instruction_counts(self) -> list[int]:
        """One count per step so far (when counting instructions on QEMU)."""
        return self._program.instruction_counts()

    def close(self) -> RunResult:
        """End the input and wait for the program: its RunResult (exit code, one instruction count per
        step when counting, the stack peak on Cortex-M); EdgeGRUError if it did not end cleanly."""
        result = self._program.finish(b"", self.timeout_s)
        if result.fault_kind or result.exit_code != 0:
            raise EdgeGRUError(f"{self._program.exe.name} on {self.target.name} ended with "
                               + (f"a {result.fault_kind}" if result.fault_kind else f"exit code {result.exit_code}")
                               + f": {result.stderr.decode(errors='replace').strip()[-300:]}")
        if result.stdout:
            raise EdgeGRUError(f"{self._program.exe.name} on {self.target.name} wrote {len(result.stdout)} bytes "
                               "no record asked for")
        return result

    def kill(self) -> None:
        """Stop the program now."""
        self._program.kill()

    def step_function(self):
        """`step(x_q [1, F], states) -> (logits [1, C], states)` for a generic streaming loop.  The program
        holds its own state, so `states` must be either the state it holds (the last states it returned:
        it steps on) or the initial state of every layer (it resets first); others raise EdgeGRUError."""

        def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
            return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))

        def step(x_q: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
            states = [np.asarray(s) for s in states]
            if not same(states, self._held):
                if not same(states, self.initial_states):
                    raise EdgeGRUError("the C program holds its own state: it can step on from the states it "
                                       "returned last or start again from the initial state, not from others")
                self.reset()
            return self.step(x_q)

        return step


def build_model(model: QuantizedModel, target: str | Target, out_dir: Path, name: str = DEFAULT_NAME,
                defines: dict[str, object] | None = None, detector: DetectorParams | None = None) -> Path:
    """The model's harness (with `detector`: and the detector) generated into `out_dir` and built for
    `target` with the step markers (`defines` may move them): the program."""
    sources = write_sources(model, out_dir, name, detector=detector)
    return build(target, sources, include_dirs=[out_dir], out_dir=out_dir,
                 defines={**MARKER_DEFINES, **(defines or {})}, name=name)


def build_chain(model: QuantizedModel, target: str | Target, out_dir: Path, detector: DetectorParams | None,
                frontend: FrontEnd, name: str = DEFAULT_NAME, defines: dict[str, object] | None = None) -> Path:
    """The audio chain (model, detector, front end, harness with audio records) generated into `out_dir`
    and built for `target` with the markers (`defines` may move them: `audio_harness.PART_WINDOWS`)."""
    if detector is None:
        raise EdgeGRUError("the audio chain runs the detector: give detector params")
    sources = write_chain_sources(model, out_dir, detector, frontend.header, name)
    objects, includes = frontend.compile(get_target(target).name, out_dir / "frontend") if frontend.compile else ([], [])
    return build(target, [*sources, *frontend.sources, *objects], include_dirs=[out_dir, *frontend.include_dirs, *includes],
                 out_dir=out_dir, defines={**MARKER_DEFINES, **frontend.defines, **(defines or {})}, name=name)
