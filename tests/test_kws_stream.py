"""Keyword streams: the hit rule, false alarms per hour, the threshold curve, sessions that carry their
own truth, and integer-code inputs that pass into the model unchanged."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edgegru.calibrate import observe
from edgegru.data import Normalization, Recording
from edgegru.errors import EdgeGRUError
from edgegru.golden import quantize_features
from edgegru.quantize import quantize_model
from edgegru.stream_detect import DetectorParams, Event, detect
from edgegru.stream_keywords import false_alarms_at_recall, keyword_curve, keyword_scores, recall_ceiling
from edgegru.stream_metrics import Session, make_sessions


def event(cls, detected):
    return Event(cls, detected - 2, detected + 3, 10, detected)


def test_words_are_found_within_the_tolerance_and_everything_else_is_a_false_alarm():
    # Background 0, keywords 1 and 2; words at steps 10-20 (class 1) and 50-60 (class 2); 180,000 steps = 1 h at 20 ms.
    session = Session(0, np.zeros((180_000, 1), np.float32), [(0, 9, 0), (10, 20, 1), (21, 49, 0), (50, 60, 2)])
    events = [[event(1, 12),    # found: inside the word
               event(1, 14),    # a second event for the same word: false alarm
               event(2, 85),    # 25 steps after the word's end: found (tolerance 25)
               event(0, 30),    # background class: neither
               event(2, 300)]]  # nowhere near a word: false alarm
    scores = keyword_scores(events, [session], {1, 2}, tolerance=25, step_seconds=0.02)
    assert scores["keywords"] == 2 and scores["detections"] == 2 and scores["misses"] == 0
    assert scores["false_alarms"] == 2 and scores["false_alarms_per_hour"] == 2.0 and scores["recall"] == 1.0
    late = keyword_scores([[event(2, 86)]], [session], {1, 2}, tolerance=25, step_seconds=0.02)
    assert late["detections"] == 0 and late["false_alarms"] == 1 and late["recall"] == 0.0


def test_the_curve_trades_false_alarms_for_recall():
    """Higher thresholds cannot raise recall here: a clean word and a weaker noise burst."""
    steps, classes = 3000, 3
    logits = np.zeros((steps, classes), np.int64)
    logits[:, 0] = 10
    logits[100:140, 1] = 40   # a word of class 1 at steps 100-140
    logits[1000:1030, 2] = 25  # a burst that looks like class 2, no word there
    session = Session(0, np.zeros((steps, 1), np.float32), [(0, 99, 0), (100, 140, 1), (141, steps - 1, 0)])
    params = DetectorParams(window=5, threshold=0, min_duration=3, holdoff=10)
    curve = keyword_curve([logits], [session], params, True, [50, 100, 200], {1, 2}, 25, 0.02)
    assert [p["recall"] for p in curve] == [1.0, 1.0, 0.0]
    assert curve[0]["false_alarms_per_hour"] > 0 and curve[1]["false_alarms_per_hour"] == 0
    assert false_alarms_at_recall(curve, 0.9) == 0 and false_alarms_at_recall(curve[2:], 0.9) is None


def test_the_recall_ceiling_counts_the_words_whose_class_ever_tops_the_smoothed_scores():
    steps = 400
    logits = np.zeros((steps, 3), np.int64)
    logits[:, 0] = 10
    logits[100:140, 1] = 40  # a word of class 1 that tops the scores
    logits[250:290, 2] = 8   # a word of class 2 that never rises above the background
    segments = [(0, 99, 0), (100, 140, 1), (141, 249, 0), (250, 290, 2), (291, steps - 1, 0)]
    session = Session(0, np.zeros((steps, 1), np.float32), segments)
    top = detect(DetectorParams(window=5, threshold=0, min_duration=1, holdoff=0), logits, True)[1]
    assert recall_ceiling([top], [session], {1, 2}, tolerance=25) == 0.5
    assert recall_ceiling([top], [Session(0, session.signal, [(0, steps - 1, 0)])], {1, 2}, 25) is None


def test_no_threshold_duration_or_hold_off_finds_more_words_than_the_ceiling():
    rng = np.random.default_rng(3)
    steps, window = 3000, 4
    logits = rng.integers(-20, 21, size=(steps, 4))
    segments, start = [], 0
    for cls in rng.integers(0, 4, size=60):
        length = int(rng.integers(20, 40))
        segments.append((start, start + length - 1, int(cls)))
        start += length
    session = Session(0, np.zeros((start, 1), np.float32), segments)
    logits = logits[:start]
    top = detect(DetectorParams(window, 0, 1, 0), logits, True)[1]
    ceiling = recall_ceiling([top], [session], {1, 2, 3}, tolerance=10)
    recalls = [point["recall"] for duration in (1, 3) for holdoff in (0, 10)
               for point in keyword_curve([logits], [session], DetectorParams(window, 0, duration, holdoff, (0,)),
                                          True, [0, 5, 20], {1, 2, 3}, 10, 0.02)]
    assert 0 < max(recalls) <= ceiling < 1


def test_a_recording_with_segments_keeps_its_own_truth_in_a_session():
    plain = Recording(np.zeros((5, 1), np.float32), 3, subject=0)
    stream = Recording(np.zeros((100, 1), np.float32), 0, subject=0, segments=((0, 39, 0), (40, 59, 2), (60, 99, 0)))
    sessions = make_sessions([plain, stream], seed=0)
    assert len(sessions) == 1 and len(sessions[0].signal) == 105
    offset = 0 if sessions[0].segments[0] == (0, 39, 0) else 5
    assert (offset + 40, offset + 59, 2) in sessions[0].segments
    labels = sessions[0].frame_labels
    assert (labels[offset + 40: offset + 60] == 2).all() and labels.tolist().count(3) == 5


@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_integer_codes_pass_into_the_model_unchanged(small_checkpoint, japanese_vowels, scheme):
    features = small_checkpoint.model.config.input_size
    codes = Normalization(np.zeros(features, np.float32), np.full(features, 32, np.float32), codes=True)
    checkpoint = replace(small_checkpoint, normalization=codes)
    rng = np.random.default_rng(0)
    train = replace(japanese_vowels.train, x=rng.integers(-128, 128, japanese_vowels.train.x.shape).astype(np.float32))
    model = quantize_model(checkpoint, observe(checkpoint.model, train, codes), scheme)
    widening = 256 if scheme == "int16x8" else 1  # int16 inputs hold the code times 256, exactly
    assert model.tensors["x"].scale == 1 / (32 * widening) and model.tensors["x"].zero_point == 0
    raw = rng.integers(-128, 128, (1000, features))
    assert (quantize_features(model, raw.astype(np.float32)) == raw * widening).all()
    with pytest.raises(EdgeGRUError, match="power-of-two"):
        quantize_model(replace(checkpoint, normalization=replace(codes, std=np.full(features, 30, np.float32))),
                       observe(checkpoint.model, train, codes), scheme)
