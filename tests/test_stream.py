"""Streaming: the state policies, the detector, the metrics, and every backend streamed bit for bit."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from edgegru.cli import main
from edgegru.golden import golden_step_function, initial_states, quantize_features, run_sequences
from edgegru.stages.export_stage import export_run
from edgegru.stages.firmware_stage import firmware_run
from edgegru.stages.run_layout import RunLayout
from edgegru.stages.stream_stage import stream_run
from edgegru.stream_detect import Detector, DetectorConfig, DetectorParams, detect, prepare_detector
from edgegru.stream_engine import StatePolicy, parse_policy, stream_lanes
from edgegru.stream_metrics import Session, event_scores, make_sessions
from edgegru.data import Recording


def test_policies_reset_their_copies_and_pick_the_oldest():
    staggered = parse_policy("staggered:100:2")
    assert staggered == StatePolicy(100, 2) and list(staggered.offsets()) == [0, 50]
    assert list(staggered.resets(50)) == [False, True] and list(staggered.resets(100)) == [True, False]
    assert staggered.chosen(60) == 0 and staggered.chosen(120) == 1 and staggered.chosen(149) == 1
    assert parse_policy("none").resets(7).tolist() == [False]
    for bad in ("reset:0", "staggered:3:5", "sometimes"):
        with pytest.raises(Exception, match="policy|period|copies|K"):
            parse_policy(bad)


def test_a_periodic_reset_equals_fresh_streams(quantized):
    """reset:N through the one loop gives exactly the logits of each N-step piece run from the start."""
    model = quantized["int8"]
    x = quantize_features(model, np.random.default_rng(0).normal(size=(35, model.config["input_size"])))
    step = golden_step_function(model)
    got = np.zeros((35, model.config["num_classes"]), dtype=np.int64)
    stream_lanes(lambda xs, s: (lambda t, n: (t["logits"], n))(*step(xs, s)), initial_states(model, 1),
                 [(x, StatePolicy(10))], lambda lane, t, scores: got.__setitem__(t, scores))
    for start in range(0, 35, 10):
        piece = x[None, start: start + 10]
        expected = []
        run_sequences(model, piece, np.array([piece.shape[1]]),
                      on_step=lambda t, tensors, active: expected.append(tensors["logits"][0]))
        assert np.array_equal(got[start: start + 10], np.array(expected))


def run_detector(params, logits, integer=True):
    return detect(params, np.asarray(logits), integer)[0]


def test_the_detector_needs_min_duration_and_holds_off():
    # class 1 leads by 3 for 5 steps, then class 0 by 3 for 2 steps, then class 1 again for 4 steps
    logits = [[0, 3]] * 5 + [[3, 0]] * 2 + [[0, 3]] * 4
    params = DetectorParams(window=1, threshold=3, min_duration=3, holdoff=0)
    events = run_detector(params, logits)
    assert [(e.cls, e.start, e.end, e.peak, e.detected) for e in events] == [(1, 0, 4, 3, 2), (1, 7, 10, 3, 9)]
    held = run_detector(DetectorParams(1, 3, 3, holdoff=3), logits)
    assert [(e.start, e.end) for e in held] == [(0, 4), (8, 10)]  # no run may start before step 4 + 3 + 1
    assert run_detector(DetectorParams(1, 4, 1, 0), logits) == []  # the margin never reaches 4
    tie = run_detector(DetectorParams(1, 0, 1, 0), [[2, 2]])
    assert tie[0].cls == 0  # a tie goes to the lowest class


def test_smoothing_sums_the_window_and_integer_equals_float():
    rng = np.random.default_rng(3)
    logits = rng.integers(-128, 128, size=(3000, 5))
    params = prepare_detector(DetectorConfig(window=8, threshold=0.5, min_duration=4, holdoff=2), logits_scale=0.05)
    assert params.threshold == 80  # ceil(0.5 * 8 / 0.05)
    detector = Detector(params, 5, integer=True)
    for t, row in enumerate(logits):
        detector.push(row)
        assert detector.sums == logits[max(0, t - 7): t + 1].sum(axis=0).tolist()
    integer = run_detector(params, logits)
    floats = run_detector(DetectorParams(8, 80.0, 4, 2), logits.astype(np.float64), integer=False)
    assert integer and [(e.cls, e.start, e.end) for e in integer] == [(e.cls, e.start, e.end) for e in floats]
    for event in integer:
        assert event.end - event.start + 1 >= 4 and event.peak >= 80


def test_event_scores_follow_the_overlap_rule():
    session = Session(0, np.zeros((30, 1), np.float32), [(0, 9, 0), (10, 19, 1), (20, 29, 2)])
    events = run_detector(DetectorParams(1, 1, 1, 0), [[1, 0, 0]] * 5 + [[0, 0, 0]] * 7 + [[0, 0, 1]] * 10
                          + [[0, 1, 0]] * 8)
    # class 0 over 0-4 (hit), class 2 over 12-21 (overlaps the class-2 segment at 20-21), class 1 over 22-29 (miss)
    scores = event_scores([events], [session])
    assert scores["event_precision"] == round(2 / 3, 4) and scores["event_recall"] == round(2 / 3, 4)
    assert scores["median_latency_steps"] == (0 + (12 - 20)) / 2


def test_sessions_put_a_subjects_recordings_back_to_back():
    recordings = [Recording(np.full((n, 2), n, np.float32), label, subject)
                  for n, label, subject in ((3, 0, 1), (4, 1, 1), (5, 2, 2))]
    sessions = make_sessions(recordings, seed=0)
    assert [s.subject for s in sessions] == [1, 2] and len(sessions[0].signal) == 7
    for session in sessions:
        for start, end, cls in session.segments:
            assert (session.signal[start: end + 1] == end - start + 1).all()
            assert (session.frame_labels[start: end + 1] == cls).all()
    assert make_sessions(recordings, seed=0)[0].segments == sessions[0].segments


@pytest.fixture(scope="module")
def stream_file(quantized_run, japanese_vowels, tmp_path_factory):
    """Eight test sequences back to back, labelled per step, and every deployable file of the run."""
    split = japanese_vowels.test
    x = np.concatenate([split.x[i, : split.lengths[i]] for i in range(8)])
    y = np.concatenate([np.full(split.lengths[i], split.y[i]) for i in range(8)])
    path = tmp_path_factory.mktemp("stream") / "eight.npz"
    np.savez(path, x=x, y=y)
    for fmt in ("tflite", "onnx"):
        export_run(quantized_run, "int8", fmt)
    firmware_run(quantized_run, "int8", ["host"], max_sequences=1)
    return path


def test_every_integer_backend_streams_the_same_integers_and_events(quantized_run, quantized, stream_file):
    detector = DetectorConfig(window=4, threshold=0.5, min_duration=3, holdoff=2)
    reports = {backend: stream_run(quantized_run, "int8", backend, str(stream_file), detector, "staggered:20:2",
                                   progress=False)
               for backend in ("golden", "tflm", "onnxruntime", "c-host")}
    events = reports["golden"]["events"]
    assert events and all(r["events"] == events for r in reports.values())
    assert len({r["frame_accuracy"] for r in reports.values()}) == 1
    # policy none streamed step by step = the whole stream evaluated at once by the golden model
    none = stream_run(quantized_run, "int8", "golden", str(stream_file), detector, "none", progress=False)
    model = quantized["int8"]
    with np.load(stream_file) as archive:
        x_q = quantize_features(model, archive["x"])[None]
    logits = []
    run_sequences(model, x_q, np.array([x_q.shape[1]]), on_step=lambda t, tensors, a: logits.append(tensors["logits"][0]))
    whole = detect(prepare_detector(detector, model.tensors["logits"].scale), np.array(logits), integer=True)[0]
    assert none["events"] == [e.as_list(0) for e in whole]
    written = json.loads((RunLayout(quantized_run).root / "stream" / "int8-c-host.json").read_text())
    for key in ("frame_accuracy", "windowed_accuracy", "event_precision", "event_recall", "event_f1",
                "median_latency_steps", "state_policy", "steps", "events"):
        assert key in written
    assert (RunLayout(quantized_run).root / "stream" / "int8-c-host.png").stat().st_size > 10_000


def test_a_stream_report_is_reused_only_if_the_same_code_made_it(quantized_run, stream_file):
    detector = DetectorConfig(window=4, threshold=0.5, min_duration=3, holdoff=2)
    first = stream_run(quantized_run, "int8", "golden", str(stream_file), detector, "none", progress=False)
    again = stream_run(quantized_run, "int8", "golden", str(stream_file), detector, "none", progress=False, reuse=True)
    assert not first["reused"] and again["reused"] and again["events"] == first["events"]
    path = RunLayout(quantized_run).root / "stream" / "int8-golden.json"
    older = json.loads(path.read_text())
    older["inputs"]["report"] -= 1  # as the code before the report's last change wrote it
    path.write_text(json.dumps(older))
    remade = stream_run(quantized_run, "int8", "golden", str(stream_file), detector, "none", progress=False, reuse=True)
    assert not remade["reused"] and json.loads(path.read_text())["inputs"]["report"] == older["inputs"]["report"] + 1


@pytest.mark.parametrize("content, message", [
    ("1,2\n3,4\n", "must be \\[steps >= 1, 12\\]"),
    ("", "empty"),
    (",".join(["1"] * 11) + ",x\n", "not a number"),
    (",".join(["1"] * 11) + ",nan\n", "NaN or inf"),
])
def test_bad_streams_are_one_line_and_exit_2(quantized_run, tmp_path, capsys, content, message):
    source = tmp_path / "bad.csv"
    source.write_text(content)
    stream_dir = quantized_run / "stream"
    before = sorted(p.name for p in stream_dir.glob("*")) if stream_dir.exists() else []
    assert main(["stream", str(quantized_run), "--source", str(source), "--policy", "none"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and re.search(message, error), error
    assert (sorted(p.name for p in stream_dir.glob("*")) if stream_dir.exists() else []) == before


def test_a_missing_source_is_one_line_and_exit_2_from_the_command(quantized_run, tmp_path):
    missing = subprocess.run([sys.executable, "-m", "edgegru", "stream", str(quantized_run), "--source",
                              str(tmp_path / "nope.csv")], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no such file" in missing.stderr
