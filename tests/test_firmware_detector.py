"""The generated C event detector (`codegen.detector_source`) is `edgegru.stream_detect.Detector` step for
step: the same events at the same steps, on random int8 and int16 logits streams (edge-case params, long
runs, resets and finishes mid-stream, the step counter's wrap) and on a real model's logits streamed over
japanese-vowels sequences back to back, on the host and on the emulated Cortex-M4 and M55.  Compiled into
the stream harness, it leaves the model's outputs (golden, bit for bit) and its step window's instruction
counts as they were."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edgegru.errors import EdgeGRUError
from edgegru.golden import quantize_features
from edgegru.stream_detect import Detector, DetectorConfig, DetectorParams, prepare_detector
from export.verify import golden_trace
from firmware_sim.codegen.detector_source import detector_c
from firmware_sim.codegen.harness import (DEFAULT_NAME, MARK_DETECTOR, MARK_PIPELINE, decode_detector_steps,
                                          decode_events, finish_record, reset_record, steps_record,
                                          write_detector_sources, write_sources)
from firmware_sim.device.build import build
from firmware_sim.device.execute import run
from firmware_sim.device.targets import get_target
from firmware_sim.step_session import MARKER_DEFINES, StepSession

TARGETS = ["host", "cortex-m4", "cortex-m55"]
NAME = "det"
WRAP_START = 2**32 - 1500  # the first step of the wrap test: the counter wraps 1500 steps in

# (window, threshold in sum units, min_duration, holdoff)
PARAM_SETS = {
    "window 1, threshold 0, every step hot": DetectorParams(1, 0, 1, 0),
    "window 1, small threshold": DetectorParams(1, 3, 1, 0),
    "short runs, holdoff 1": DetectorParams(3, 10, 2, 1),
    "min duration 1, holdoff 0": DetectorParams(8, 40, 1, 0),
    "watch-like": DetectorParams(25, 677, 25, 25),
    "long holdoff": DetectorParams(16, 200, 5, 300),
    "window 1024": DetectorParams(1024, 30000, 10, 7),
    "threshold above every margin": DetectorParams(4, 2**40, 1, 0),
}


def logits_stream(activation: str, classes: int, steps: int, seed: int) -> np.ndarray:
    """[steps, classes] logits: segments of 1 to ~400 steps, each either noise alone or one class raised
    above the others (long runs, short flickers, ties), some at the type's extremes."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(activation)
    scale = 12 if activation == "int8" else 3000
    rows, total = [], 0
    while total < steps:
        length = int(rng.choice([1, 2, 3, rng.integers(4, 40), rng.integers(40, 400)]))
        kind = rng.integers(0, 6)
        if kind == 0:  # the type's extremes: the largest sums and margins
            block = rng.choice([info.min, info.max], size=(length, classes))
            block[:, rng.integers(classes)] = info.max
        elif kind == 1:  # all equal: ties everywhere
            block = np.full((length, classes), rng.integers(info.min, info.max))
        else:
            block = rng.normal(0, scale, size=(length, classes))
            if kind >= 3:
                block[:, rng.integers(classes)] += rng.uniform(0.5, 4) * scale
        rows.append(np.clip(np.round(block), info.min, info.max))
        total += length
    return np.concatenate(rows)[:steps].astype(activation)


def python_events(params: DetectorParams, chunks: list, classes: int, first_step: int = 0) -> list:
    """The records the harness answers `chunks` with, as Python computes them: per step and per finish,
    the Event or None (steps modulo 2^32).  chunks: arrays of steps, "finish" or "reset"."""
    def fresh():
        detector = Detector(params, classes, integer=True)
        detector.t = first_step
        return detector

    def wrapped(event):
        if event is None:
            return None
        return type(event)(event.cls, event.start % 2**32, event.end % 2**32, event.peak, event.detected % 2**32)

    detector, out = fresh(), []
    for chunk in chunks:
        if isinstance(chunk, str):
            if chunk == "reset":
                detector = fresh()
            else:
                out.append(wrapped(detector.finish()))
        else:
            out.extend(wrapped(detector.push(row)) for row in chunk)
    return out


def encode(chunks: list) -> bytes:
    return b"".join(reset_record() if isinstance(chunk, str) and chunk == "reset" else
                    finish_record() if isinstance(chunk, str) else steps_record(chunk) for chunk in chunks)


def stream_chunks(logits: np.ndarray) -> list:
    """A stream cut into records of varying sizes, finished, stepped on after the finish, finished again,
    reset and run again (a new stream)."""
    third = len(logits) // 3
    return [logits[:1], logits[1:700], logits[700:third], "finish", logits[third:2 * third], "finish",
            "reset", logits[2 * third:], "finish"]


def build_detector(directory, target, params, activation, classes, defines=None):
    sources = write_detector_sources(directory, NAME, params, activation, classes)
    return build(target, sources, include_dirs=[directory], out_dir=directory, defines=defines, name=NAME)


def run_checked(target, exe, stdin, count_instructions=False):
    result = run(target, exe, stdin, timeout_s=600, count_instructions=count_instructions)
    assert result.exit_code == 0 and result.fault_kind is None, result.stderr
    return result


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("activation, classes", [("int8", 9), ("int16", 7), ("int8", 2), ("int16", 1)])
def test_random_logits_streams_give_the_python_events(tmp_path, target, activation, classes):
    get_target(target)
    seen = 0
    for k, (label, params) in enumerate(PARAM_SETS.items()):
        logits = logits_stream(activation, classes, 3000, seed=k + 10 * classes)
        chunks = stream_chunks(logits)
        expected = python_events(params, chunks, classes)
        exe = build_detector(tmp_path / str(k), target, params, activation, classes)
        ours = decode_events(run_checked(target, exe, encode(chunks)).stdout)
        assert len(ours) == len(expected), label
        for i, (a, b) in enumerate(zip(ours, expected)):
            assert a == b, f"{label}: record {i}: C {a}, Python {b}"
        seen += sum(e is not None for e in expected)
    assert seen >= (3 if classes == 1 else 100)  # the streams do make events (one class: one run per finish)


@pytest.mark.parametrize("activation", ["int8", "int16"])
def test_events_carry_the_steps_modulo_2_32_across_the_counters_wrap(tmp_path, activation):
    """The step counter starts 1500 steps before 2^32 (a test-only define): the same events as Python's
    unbounded counter, their steps modulo 2^32, the hold-off and the runs unaffected by the wrap."""
    classes = 5
    logits = logits_stream(activation, classes, 3000, seed=3)
    logits[1440:1570] = 0
    logits[1440:1570, 2] = np.iinfo(activation).max // 2  # a long run of class 2 across the wrap
    chunks = [logits[:1400], logits[1400:1600], logits[1600:], "finish"]
    for k, params in enumerate([DetectorParams(3, 10, 2, 1), DetectorParams(16, 200, 5, 40),
                                DetectorParams(1, 0, 1, 0)]):
        expected = python_events(params, chunks, classes, first_step=WRAP_START)
        exe = build_detector(tmp_path / str(k), "host", params, activation, classes,
                             defines={f"{NAME.upper()}_DETECTOR_FIRST_STEP": f"{WRAP_START}u"})
        ours = decode_events(run_checked("host", exe, encode(chunks)).stdout)
        assert ours == expected
        ended = [e for e in expected if e is not None]
        assert any(e.cls == 2 and e.start > e.end for e in ended)  # the run across the wrap
        assert any(e.start < 1400 for e in ended) and any(e.start > WRAP_START for e in ended)


def test_params_the_c_detector_cannot_hold_are_refused():
    for params, message in [(DetectorParams(0, 1, 1, 0), "window"), (DetectorParams(1025, 1, 1, 0), "window"),
                            (DetectorParams(5, 1, 0, 0), "min_duration"), (DetectorParams(5, 1, 1, -1), "holdoff"),
                            (DetectorParams(5, 1.5, 1, 0), "integer threshold"),
                            (DetectorParams(5, -1, 1, 0), "threshold")]:
        with pytest.raises(EdgeGRUError, match=message):
            detector_c(NAME, params, "int8", 3)
    with pytest.raises(EdgeGRUError, match="int8 or int16"):
        detector_c(NAME, DetectorParams(5, 1, 1, 0), "float32", 3)
    assert detector_c(NAME, DetectorParams(5, 2.0, 1, 0), "int8", 3)  # an integral float is the integer


# --- with a real model ------------------------------------------------------------------------------


def vowels_stream(model, split, count=12):
    """The first `count` sequences of `split` back to back, as one stream [1, T, F]."""
    x_q = quantize_features(model, split.x[:count])
    steps = np.concatenate([x_q[i, :length] for i, length in enumerate(split.lengths[:count])])
    return steps[None], np.array([len(steps)])


def model_params(model) -> DetectorParams:
    """Settings that make a few events on the small model's logits."""
    return prepare_detector(DetectorConfig(window=4, threshold=0.3, min_duration=3, holdoff=2),
                            model.tensors["logits"].scale)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_the_model_with_the_detector_gives_golden_outputs_and_the_python_events(quantized, japanese_vowels,
                                                                               tmp_path, target, scheme):
    get_target(target)
    model = quantized[scheme]
    classes = model.config["num_classes"]
    x_q, lengths = vowels_stream(model, japanese_vowels.test)
    trace = golden_trace(model, x_q, lengths, "double")
    golden_logits = np.stack([step["logits"][0] for step in trace])
    params = model_params(model)
    steps = x_q[0]
    chunks = [steps[:50], steps[50:], "finish"]
    expected = python_events(params, [golden_logits[:50], golden_logits[50:], "finish"], classes)
    assert sum(e is not None for e in expected) >= 2

    sources = write_sources(model, tmp_path, DEFAULT_NAME, detector=params)
    exe = build(target, sources, include_dirs=[tmp_path], out_dir=tmp_path, defines=MARKER_DEFINES,
                name=DEFAULT_NAME)
    raw = run_checked(target, exe, encode(chunks)).stdout
    finish_bytes = raw[-24:]
    logits, states, events = decode_detector_steps(model, raw[:-24])
    assert np.array_equal(logits, golden_logits)
    for k, (_, h_out) in enumerate(model.states):
        assert np.array_equal(states[k], np.stack([step[h_out][0] for step in trace]))
    assert events + decode_events(finish_bytes) == expected


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_a_session_with_the_detector_answers_every_step_and_the_finish(quantized, japanese_vowels, tmp_path,
                                                                       target):
    model = quantized["int8"]
    classes = model.config["num_classes"]
    x_q, _ = vowels_stream(model, japanese_vowels.test)
    steps = x_q[0]
    params = model_params(model)
    with StepSession.build(model, target, tmp_path, detector=params) as session:
        got, all_logits = [], []
        for t in range(len(steps)):
            logits, _, events = session.step_detect(steps[t:t + 1])
            got.extend(events)
            all_logits.append(logits[0])
        got.append(session.finish())
        session.reset()  # a new stream: the detector starts again at step 0
        logits, _ = session.step(steps[:40])
        again = list(session.last_events) + [session.finish()]
        session.close()
    expected = python_events(params, [np.stack(all_logits), "finish"], classes)
    assert got == expected and sum(e is not None for e in got) >= 2
    assert again == python_events(params, [logits, "finish"], classes)
    with (StepSession.build(model, "host", tmp_path / "plain") as plain,
          pytest.raises(EdgeGRUError, match="needs a program built with the detector")):
        plain.finish()


# --- instruction counts -----------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55"])
def test_the_step_window_counts_the_same_with_the_detector(quantized, japanese_vowels, tmp_path, target):
    """Built with the detector, the default window is still the step alone: the same counts as without;
    the detector's own window and the pipeline's count what they should."""
    model = quantized["int8"]
    x_q, _ = vowels_stream(model, japanese_vowels.test, count=3)
    stdin = reset_record() + steps_record(x_q[0])
    params = model_params(model)
    counts = {}
    for label, detector, defines in [("plain", None, {}), ("with detector", params, {}),
                                     ("detector", params, {MARK_DETECTOR: None}),
                                     ("pipeline", params, {MARK_PIPELINE: None})]:
        directory = tmp_path / label.replace(" ", "_")
        sources = write_sources(model, directory, DEFAULT_NAME, detector=detector)
        exe = build(target, sources, include_dirs=[directory], out_dir=directory,
                    defines={**MARKER_DEFINES, **defines}, name=DEFAULT_NAME)
        counts[label] = np.array(run_checked(target, exe, stdin, count_instructions=True).instruction_counts)
        assert len(counts[label]) == x_q.shape[1], label
    assert np.array_equal(counts["with detector"], counts["plain"])
    assert 0 < counts["detector"].max() < 600
    # the pipeline window: the step and the push, minus one marker overhead (a few instructions)
    assert np.all(np.abs(counts["pipeline"] - (counts["plain"] + counts["detector"])) < 30)


def test_background_classes_start_no_run_in_python_and_in_c(quantized, japanese_vowels, tmp_path):
    """Background classes (keyword spotting's silence and unknown) never make an event, nor a hold-off."""
    model = quantized["int8"]
    classes = model.config["num_classes"]
    x_q, lengths = vowels_stream(model, japanese_vowels.test)
    golden_logits = np.stack([step["logits"][0] for step in golden_trace(model, x_q, lengths, "double")])
    plain = [e for e in python_events(model_params(model), [golden_logits, "finish"], classes) if e is not None]
    background = (plain[0].cls,)
    params = replace(model_params(model), background=background)
    expected = python_events(params, [golden_logits, "finish"], classes)
    found = [e for e in expected if e is not None]
    assert found and all(e.cls not in background for e in found) and found != plain
    sources = write_sources(model, tmp_path, DEFAULT_NAME, detector=params)
    exe = build("host", sources, include_dirs=[tmp_path], out_dir=tmp_path, defines=MARKER_DEFINES, name=DEFAULT_NAME)
    raw = run_checked("host", exe, encode([x_q[0], "finish"])).stdout
    _, _, events = decode_detector_steps(model, raw[:-24])
    assert events + decode_events(raw[-24:]) == expected
