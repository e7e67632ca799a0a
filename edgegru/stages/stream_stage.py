"""`edgegru stream`: a stream through one backend, smoothed, detected, scored; `runs/NAME/stream/`.

Sources: `test-recordings` (the test subjects' whole recordings, each subject's back to back as one
session, with the truth), or a user's FILE.npz (`x` [T, F], optional per-step labels `y`) or FILE.csv
(one step per line: F numbers, optionally a last column of labels).  The state policy is chosen by
measurement on the validation recordings (frame accuracy, with the golden model for integer schemes
and the float model for float) unless one is given, and the report states it beside `none`.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from edgegru.artifact import load_artifact
from edgegru.atomic import write_atomic, write_json_atomic
from edgegru.calibrate import float_initial_states, float_step_function
from edgegru.checkpoint import load_checkpoint
from edgegru.data import load_dataset
from edgegru.data.kws import keyword_classes
from edgegru.data.kws_frontend import HOP_SECONDS, WINDOW
from edgegru.data.wav_io import read_wav
from edgegru.errors import EdgeGRUError
from edgegru.golden import golden_step_function, initial_states, quantize_features
from edgegru.stages.firmware_stage import c_step_session
from edgegru.stages.run_layout import RunLayout, artifact_digest, file_digest, read_json
from edgegru.stages.verify_stage import backend_step
from edgegru.stream_detect import Detector, DetectorConfig, Event, as_record, dataset_detector, prepare_detector
from edgegru.stream_engine import StatePolicy, parse_policy, rowwise, stream_lanes
from edgegru.stream_keywords import (TARGET_RECALL, TOLERANCE_SECONDS, false_alarms_at_recall, keyword_curve,
                                     keyword_scores, recall_ceiling)
from edgegru.stream_metrics import Session, event_scores, make_sessions
from export.verify import BACKENDS
from firmware_sim.step_session import StepSession

STREAM_BACKENDS = ["float", "golden", *BACKENDS]
TEST_RECORDINGS = "test-recordings"
STREAM_REPORT = 2  # the report's figures: raise it when one is added or changes, so older reports are made anew
CURVE_THRESHOLDS = [float(t) for t in np.arange(0.0, 16.5, 0.5)]  # mean logit margins for the keyword curve


def policy_candidates(window_steps: int) -> list[StatePolicy]:
    """none, and resets at one and two training windows, alone and staggered."""
    return [StatePolicy(), StatePolicy(window_steps), StatePolicy(2 * window_steps),
            StatePolicy(window_steps, 2), StatePolicy(2 * window_steps, 4)]


class Scorer:
    """What runs streams through one backend: its step for a number of rows, the initial state of a row,
    the input conversion, and whether lanes may share one batch (golden, float) or run one at a time
    (runtimes and the C program: a lane's rows only, so that every row steps with its lane)."""

    def __init__(self, step_for: Callable[[int], contextlib.AbstractContextManager], initial: list[np.ndarray],
                 prepare: Callable[[np.ndarray], np.ndarray], logits_scale: float | None, num_classes: int,
                 batched: bool):
        self.step_for, self.initial, self.prepare = step_for, initial, prepare
        self.logits_scale, self.num_classes, self.batched = logits_scale, num_classes, batched

    @property
    def integer(self) -> bool:
        return self.logits_scale is not None

    def scores(self, lanes: list[tuple[np.ndarray, StatePolicy]], on_scores) -> None:
        """Raw lanes (signal, policy) through the backend; on_scores(lane, t, scores)."""
        prepared = [(self.prepare(signal), policy) for signal, policy in lanes]
        groups = [list(range(len(lanes)))] if self.batched else [[i] for i in range(len(lanes))]
        for group in groups:
            with self.step_for(sum(prepared[i][1].copies for i in group)) as step:
                stream_lanes(step, self.initial, [prepared[i] for i in group],
                             lambda lane, t, scores, group=group: on_scores(group[lane], t, scores))


def logits_only(step):
    """A step that returns every tensor, reduced to the logits."""
    def reduced(x, states):
        tensors, new_states = step(x, states)
        return tensors["logits"], new_states
    return reduced


def float_scorer(layout: RunLayout) -> Scorer:
    checkpoint = load_checkpoint(layout.root)
    step = contextlib.nullcontext(logits_only(float_step_function(checkpoint.model)))
    return Scorer(lambda rows: step, float_initial_states(checkpoint.model, 1),
                  lambda raw: checkpoint.normalization.apply(raw).astype(np.float64), None,
                  checkpoint.model.config.num_classes, batched=True)


def integer_scorer(layout: RunLayout, scheme: str, backend: str) -> Scorer:
    model = load_artifact(layout.quant_dir(scheme))

    @contextlib.contextmanager
    def step_for(rows: int):
        if backend == "golden":
            yield logits_only(golden_step_function(model))
        elif BACKENDS[backend].deploys == "c":
            with contextlib.ExitStack() as stack:
                first, exe = stack.enter_context(c_step_session(layout, model, BACKENDS[backend].runtime))
                sessions = [first] + [stack.enter_context(StepSession(model, BACKENDS[backend].runtime, exe))
                                      for _ in range(rows - 1)]
                yield rowwise([session.step_function() for session in sessions])
        else:
            with backend_step(layout, model, BACKENDS[backend]) as step:
                yield rowwise([step] * rows)

    return Scorer(step_for, initial_states(model, 1), lambda raw: quantize_features(model, raw),
                  model.tensors["logits"].scale, model.config["num_classes"], batched=backend == "golden")


def read_source(source: str, num_features: int, audio_features=None) -> Session:
    """A user's stream: FILE.npz (`x` [T, F], optional `y` [T]), FILE.csv (F or F + 1 columns), or, for a
    model trained on audio, FILE.wav (16 kHz mono; another rate is resampled) through its front end."""
    path = Path(source)
    if not path.is_file():
        raise EdgeGRUError(f"--source {source}: no such file (or use {TEST_RECORDINGS})")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
        except (OSError, ValueError) as error:
            raise EdgeGRUError(f"{path}: not a readable .npz ({error})") from None
        x = arrays.get("x", arrays.get("X"))
        if x is None:
            raise EdgeGRUError(f"{path}: no array 'x' [T, {num_features}]")
        labels = arrays.get("y")
    elif path.suffix.lower() == ".wav":
        if audio_features is None:
            raise EdgeGRUError(f"--source {source}: this model was not trained on audio; give a .npz or .csv stream")
        audio = read_wav(path)
        if len(audio) < WINDOW:
            raise EdgeGRUError(f"{path}: {len(audio)} samples, shorter than one {WINDOW}-sample window")
        x, labels = audio_features(audio[None])[0], None
    elif path.suffix == ".csv":
        if not path.read_text(errors="replace").strip():
            raise EdgeGRUError(f"{path}: the file is empty; the stream must be [steps >= 1, {num_features}] features")
        try:
            table = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
        except ValueError as error:
            raise EdgeGRUError(f"{path}: a cell is not a number ({str(error).splitlines()[0]})") from None
        x, labels = (table[:, :num_features], table[:, num_features]) if table.shape[1] == num_features + 1 else (table, None)
    else:
        raise EdgeGRUError(f"--source {source}: expected a .npz, .csv or .wav file, or {TEST_RECORDINGS}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0 or x.shape[1] != num_features:
        raise EdgeGRUError(f"{path}: the stream must be [steps >= 1, {num_features}] features, got {list(x.shape)}")
    if not np.isfinite(x).all():
        raise EdgeGRUError(f"{path}: the stream contains NaN or inf")
    segments = []
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64).ravel()
        if len(labels) != len(x):
            raise EdgeGRUError(f"{path}: {len(labels)} labels for {len(x)} steps")
        edges = np.flatnonzero(np.diff(labels)) + 1
        starts, ends = np.concatenate([[0], edges]), np.concatenate([edges - 1, [len(x) - 1]])
        segments = [(int(s), int(e), int(labels[s])) for s, e in zip(starts, ends)]
    return Session(0, x.astype(np.float32), segments)


def run_sessions(scorer: Scorer, sessions: list[Session], policies: list[StatePolicy], params, on_event=None,
                 progress: bool = False) -> dict:
    """Every session under each of its policy (one lane each): per lane `argmax` (the class per step),
    `events`, `top` (the smoothed top class per step) and `logits` [T, C]; and `first_lane_scores`, the
    first lane's smoothed scores [T, C] (mean logit per class over the window, in logit units)."""
    detectors = [Detector(params, scorer.num_classes, scorer.integer) for _ in sessions]
    unit = (scorer.logits_scale or 1.0) / params.window
    first_lane = np.zeros((len(sessions[0].signal), scorer.num_classes))
    argmax = [np.zeros(len(s.signal), dtype=np.int64) for s in sessions]
    top = [np.zeros(len(s.signal), dtype=np.int64) for s in sessions]
    logits = [np.zeros((len(s.signal), scorer.num_classes), dtype=np.int64 if scorer.integer else np.float64)
              for s in sessions]
    events: list[list[Event]] = [[] for _ in sessions]
    bar = tqdm(total=sum(len(s.signal) for s in sessions), disable=not progress, unit="step", desc="stream")

    def found(lane, event):
        if event is not None:
            events[lane].append(event)
            if on_event is not None:
                on_event(sessions[lane].subject, event)

    def on_scores(lane, t, scores):
        argmax[lane][t] = int(np.argmax(scores))
        logits[lane][t] = scores
        found(lane, detectors[lane].push(scores))
        top[lane][t] = detectors[lane].top
        if lane == 0:
            first_lane[t] = np.array(detectors[0].sums) * unit
        bar.update(1)

    scorer.scores([(s.signal, p) for s, p in zip(sessions, policies)], on_scores)
    for lane, detector in enumerate(detectors):
        found(lane, detector.finish())
    bar.close()
    return {"argmax": argmax, "events": events, "top": top, "logits": logits, "first_lane_scores": first_lane}


def frame_accuracy(predictions: list[np.ndarray], sessions: list[Session]) -> float | None:
    labelled = [(p, s.frame_labels) for p, s in zip(predictions, sessions) if s.segments]
    if not labelled:
        return None
    return round(float(np.mean(np.concatenate([p == y for p, y in labelled]))), 4)


def measure(scorer, sessions, policy, params, on_event=None, progress=False) -> dict:
    lanes = run_sessions(scorer, sessions, [policy] * len(sessions), params, on_event, progress)
    figures = {"state_policy": policy.name, "frame_accuracy": frame_accuracy(lanes["argmax"], sessions),
               "smoothed_frame_accuracy": frame_accuracy(lanes["top"], sessions),
               "steps": int(sum(len(s.signal) for s in sessions))}
    if any(s.segments for s in sessions):
        figures.update(event_scores(lanes["events"], sessions))
    return {"figures": figures, **lanes}


def choose_policy(scorer: Scorer, sessions: list[Session], window_steps: int, params) -> tuple[StatePolicy, dict]:
    """The candidate with the best frame accuracy on `sessions` (the simplest wins a tie)."""
    candidates = policy_candidates(window_steps)
    lanes = [(candidate, session) for candidate in candidates for session in sessions]
    predictions = run_sessions(scorer, [s for _, s in lanes], [c for c, _ in lanes], params)["argmax"]
    tried = {candidate.spec: frame_accuracy(predictions[i * len(sessions): (i + 1) * len(sessions)], sessions)
             for i, candidate in enumerate(candidates)}
    best = max(tried, key=lambda spec: (tried[spec], -list(tried).index(spec)))
    return parse_policy(best), tried


def stream_inputs(layout: RunLayout, scheme: str, backend: str, source: str, detector: DetectorConfig | dict | None,
                  policy: str, max_recordings: int | None) -> dict:
    """What a stream report is made from: a report with the same inputs can be reused."""
    model = file_digest(layout.checkpoint) if backend == "float" else artifact_digest(layout, scheme)
    return {"report": STREAM_REPORT, "model_sha256": model, "backend": backend, "source": source,
            "source_sha256": file_digest(source) if Path(source).is_file() else None,
            "detector": as_record(detector) if isinstance(detector, DetectorConfig) else detector, "policy": policy,
            "max_recordings": max_recordings}


def stream_run(run_dir: Path, scheme: str, backend: str, source: str = TEST_RECORDINGS,
               detector: DetectorConfig | dict | None = None, policy: str = "auto", max_recordings: int | None = None,
               on_event: Callable[[int, Event, str, float], None] | None = None, progress: bool = True,
               reuse: bool = False) -> dict:
    """Stream `source` through `backend` and write `stream/<scheme>-<backend>.json` (float: `float.json`)
    and `stream/<same name>.png`; `detector`: a whole DetectorConfig, or settings over the dataset's
    defaults (`stream_detect.dataset_detector`); returns the report (with `reused` True when `reuse` found the same
    inputs already streamed)."""
    layout = RunLayout(Path(run_dir))
    if backend not in STREAM_BACKENDS:
        raise EdgeGRUError(f"unknown backend '{backend}'; known: {', '.join(STREAM_BACKENDS)}")
    name = "float" if backend == "float" else f"{scheme}-{backend}"
    inputs = stream_inputs(layout, scheme, backend, source, detector, policy, max_recordings)
    earlier = read_json(layout.root / "stream" / f"{name}.json")
    if reuse and earlier is not None and earlier.get("inputs") == inputs:
        return {**earlier, "reused": True}
    dataset = load_dataset(load_checkpoint(layout.root).dataset)
    detector = dataset_detector(dataset, detector)
    scorer = float_scorer(layout) if backend == "float" else integer_scorer(layout, scheme, backend)
    params = prepare_detector(detector, scorer.logits_scale)
    if source == TEST_RECORDINGS:
        recordings = dataset.recordings.get("test", [])[:max_recordings]
        if not recordings:
            raise EdgeGRUError(f"dataset '{dataset.name}' has no whole recordings to stream; give --source FILE")
        sessions = make_sessions(recordings)
    else:
        sessions = [read_source(source, dataset.num_features, dataset.audio_features)]
    window_steps = dataset.train.x.shape[1]
    if policy == "auto":
        validation = make_sessions(dataset.recordings.get("val", []))
        if not validation:
            raise EdgeGRUError(f"dataset '{dataset.name}' has no validation recordings to choose a state policy on; "
                               "give --policy none, reset:N or staggered:N:K")
        chooser = float_scorer(layout) if backend == "float" else integer_scorer(layout, scheme, "golden")
        chosen, tried = choose_policy(chooser, validation, window_steps, prepare_detector(detector, chooser.logits_scale))
        selection = {"chosen_on": "validation recordings, frame accuracy, "
                                  + ("float model" if backend == "float" else "golden model"), "tried": tried}
    else:
        chosen, selection = parse_policy(policy), {"chosen_on": "given"}
    unit = (scorer.logits_scale or 1.0) / params.window  # a sum of logits -> the mean logit of the window
    named = None if on_event is None else (lambda recording, event: on_event(
        recording, event, dataset.class_names[event.cls], event.peak * unit))
    result = measure(scorer, sessions, chosen, params, named, progress)
    report = {"inputs": inputs, "dataset": dataset.name, "backend": backend, "scheme": None if backend == "float" else scheme,
              "source": source, **result["figures"], "state_policy_spec": chosen.spec,
              "state_policy_selection": selection, "detector": as_record(detector), "detector_params": as_record(params),
              "windowed_accuracy": windowed_accuracy(layout, scheme, backend),
              "events": [e.as_list(s.subject) for s, found in zip(sessions, result["events"]) for e in found],
              "event_rule": "an event matches a true segment of its class when their steps overlap"}
    if chosen.spec != "none" and sessions[0].segments:
        report["no_reset"] = measure(scorer, sessions, StatePolicy(), params)["figures"]
    keywords = keyword_classes(dataset.class_names)
    if keywords and any(s.segments for s in sessions):
        report.update(keyword_report(result, sessions, scorer, detector, params, keywords))
        plot_keyword_curve(layout.root / "stream" / f"{name}-det.png", report, f"{dataset.name}, {name}")
    write_json_atomic(layout.root / "stream" / f"{name}.json", report)
    plot_timeline(layout.root / "stream" / f"{name}.png", sessions[0], result["first_lane_scores"], result["events"][0],
                  dataset.class_names, f"{dataset.name}, {name}, {chosen.name}")
    return {**report, "reused": False}


def keyword_report(result: dict, sessions: list[Session], scorer: Scorer, detector: DetectorConfig, params,
                   keywords: set[int]) -> dict:
    """Keyword streams: recall and false alarms per hour at the detector's threshold, and the curve of
    both over `CURVE_THRESHOLDS` (the detector's threshold unit: mean logit margin over the window)."""
    tolerance = round(TOLERANCE_SECONDS / HOP_SECONDS)
    at = keyword_scores(result["events"], sessions, keywords, tolerance, HOP_SECONDS)
    thresholds = [prepare_detector(replace(detector, threshold=t), scorer.logits_scale).threshold
                  for t in CURVE_THRESHOLDS]
    curve = keyword_curve(result["logits"], sessions, params, scorer.integer, thresholds, keywords, tolerance,
                          HOP_SECONDS)
    for point, real in zip(curve, CURVE_THRESHOLDS):
        point["threshold"] = real
    return {"recall": at["recall"], "false_alarms_per_hour": at["false_alarms_per_hour"], "keyword_scores": at,
            f"false_alarms_per_hour_at_{round(TARGET_RECALL * 100)}_recall": false_alarms_at_recall(curve),
            "keyword_curve": curve, "highest_recall": max(curve, key=lambda p: (p["recall"] or 0, -p["false_alarms_per_hour"])),
            "recall_ceiling": recall_ceiling(result["top"], sessions, keywords, tolerance),
            "keyword_rule": f"a word is found by an event of its class detected from its first frame to "
                            f"{TOLERANCE_SECONDS} s after its clip; any other keyword event is a false alarm"}


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (imported on use: only the plots need it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(path: Path, figure) -> None:
    """`figure` laid out and written to `path` as PNG, atomically, then closed."""
    figure.tight_layout()
    write_atomic(path, lambda temp: figure.savefig(temp, format="png", dpi=110))
    pyplot().close(figure)


def plot_keyword_curve(path: Path, report: dict, title: str) -> None:
    """False rejects against false alarms per hour over thresholds; the detector's own threshold marked."""
    plt = pyplot()
    curve = report["keyword_curve"]
    figure, axis = plt.subplots(figsize=(6, 4.5))
    axis.plot([p["false_alarms_per_hour"] for p in curve], [100 * (1 - p["recall"]) for p in curve], marker="o",
              markersize=3)
    axis.plot([report["false_alarms_per_hour"]], [100 * (1 - report["recall"])], marker="*", markersize=12,
              color="red", linestyle="none", label=f"threshold {report['detector']['threshold']}")
    axis.axhline(100 * (1 - TARGET_RECALL), color="gray", linewidth=0.8, linestyle="--",
                 label=f"{round(TARGET_RECALL * 100)}% recall")
    axis.set_xscale("symlog", linthresh=1)
    axis.set_xlim(left=0)
    axis.set_xlabel("false alarms per hour")
    axis.set_ylabel("false rejects (%)")
    axis.set_title(f"{title}: thresholds {CURVE_THRESHOLDS[0]:g}-{CURVE_THRESHOLDS[-1]:g}")
    axis.grid(alpha=0.3)
    axis.legend()
    save_png(path, figure)


def windowed_accuracy(layout: RunLayout, scheme: str, backend: str) -> float | None:
    """The same model's accuracy on the test windows: train.json (float) or quant.json (integer)."""
    record = read_json(layout.train_json) if backend == "float" else read_json(layout.quant_json(scheme))
    return None if record is None else record.get("test_accuracy" if backend == "float" else "quant_accuracy")


def plot_timeline(path: Path, session: Session, smoothed: np.ndarray, events: list[Event], class_names: list[str],
                  title: str) -> None:
    """The signal, the smoothed class scores, the true segments and the events of one session."""
    plt = pyplot()
    colors = plt.get_cmap("tab10")
    figure, (signal_axis, score_axis, truth_axis) = plt.subplots(3, 1, figsize=(12, 7), sharex=True,
                                                                 gridspec_kw={"height_ratios": [2.2, 2.2, 1.4]})
    signal_axis.plot(session.signal, linewidth=0.5)
    signal_axis.set_ylabel("raw features")
    signal_axis.set_title(title)
    for cls in range(smoothed.shape[1]):
        score_axis.plot(smoothed[:, cls], linewidth=0.7, color=colors(cls % 10))
    score_axis.set_ylabel("smoothed logit\n(window mean)")
    for start, end, cls in session.segments:
        truth_axis.axvspan(start, end + 1, ymin=0.55, ymax=0.95, color=colors(cls % 10), alpha=0.6)
    for event in events:
        truth_axis.axvspan(event.start, event.end + 1, ymin=0.05, ymax=0.45, color=colors(event.cls % 10))
        truth_axis.plot([event.detected], [0.5], marker="v", color="black", markersize=4)
    truth_axis.set_yticks([0.25, 0.75], ["events", "truth"])
    truth_axis.set_xlabel("step")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors(c % 10)) for c in range(len(class_names))]
    truth_axis.legend(handles, class_names, ncol=min(len(class_names), 7), fontsize=7, loc="upper center",
                      bbox_to_anchor=(0.5, -0.45))
    save_png(path, figure)
