"""Keyword spotting end to end on `synth-kws-small`: train, quantize, stream with keyword figures, a WAV
file as the source, and the whole chain (MFCC q15 -> GRU -> detector) on the host and Cortex-M4 against
Python."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgegru.cli import main
from edgegru.data import load_dataset
from edgegru.data.kws_frontend import HOP
from edgegru.data.wav_io import write_wav
from edgegru.stages.firmware_stage import firmware_run
from edgegru.stages.quantize_stage import quantize_run
from edgegru.stages.run_layout import RunLayout
from edgegru.stages.stream_stage import stream_run
from edgegru.stages.train_stage import train_run
from edgegru.train import TrainConfig


@pytest.fixture(scope="module")
def kws():
    return load_dataset("synth-kws-small")


@pytest.fixture(scope="module")
def kws_run(kws, tmp_path_factory):
    out = tmp_path_factory.mktemp("kws") / "run"
    train_run(kws, TrainConfig(hidden=16, steps=120, seed=0), out, progress=False)
    quantize_run(out, "int8")
    return RunLayout(out)


def test_the_codes_enter_the_model_unchanged(kws, kws_run):
    quant = json.loads(kws_run.quant_json("int8").read_text())
    spec = json.loads((kws_run.quant_dir("int8") / "spec.json").read_text())
    assert spec["tensors"]["x"]["scale"] == 1 / 32 and spec["tensors"]["x"]["zero_point"] == 0
    assert spec["normalization"]["codes"] is True
    assert set(quant["extra_tests"]) == {"test-engine"} and quant["extra_tests"]["test-engine"]["sequences"] > 0
    assert np.array_equal(kws.train.x, np.round(kws.train.x)) and np.abs(kws.train.x).max() <= 128


def test_a_keyword_stream_reports_recall_and_false_alarms_per_hour(kws, kws_run):
    report = stream_run(kws_run.root, "int8", "golden", policy="none", progress=False)
    stream = kws.recordings["test"][0]
    words = sum(1 for _, _, cls in stream.segments if kws.class_names[cls] not in ("_silence_", "_unknown_"))
    scores = report["keyword_scores"]
    assert scores["keywords"] == words and scores["detections"] + scores["misses"] == words
    assert scores["hours"] == pytest.approx(len(stream.signal) * HOP / 16000 / 3600, abs=1e-4)
    assert report["false_alarms_per_hour"] == pytest.approx(scores["false_alarms"] / scores["hours"], abs=0.01)
    assert report["recall"] == scores["recall"]
    curve = report["keyword_curve"]
    assert [p["threshold"] for p in curve] == sorted(p["threshold"] for p in curve)
    assert curve[0]["recall"] >= curve[-1]["recall"]
    assert max(p["recall"] for p in curve) <= report["recall_ceiling"] <= 1
    assert report["detector"]["background"] == [kws.class_names.index("_unknown_"), kws.class_names.index("_silence_")]
    assert (kws_run.root / "stream" / "int8-golden-det.png").stat().st_size > 0


def test_a_wav_file_streams_through_the_front_end(kws, kws_run, tmp_path, capsys):
    stream = kws.recordings["test"][0]
    wav = write_wav(tmp_path / "stream.wav", stream.audio[: 16000 * 5], 16000)
    assert main(["stream", str(kws_run.root), "--scheme", "int8", "--source", str(wav), "--policy", "none"]) == 0
    report = json.loads((kws_run.root / "stream" / "int8-golden.json").read_text())
    assert report["steps"] == 1 + (16000 * 5 - 480) // HOP
    stereo = tmp_path / "stereo.wav"
    stereo.write_bytes(wav.read_bytes()[:22] + (2).to_bytes(2, "little") + wav.read_bytes()[24:])
    assert main(["stream", str(kws_run.root), "--scheme", "int8", "--source", str(stereo)]) == 2
    error = capsys.readouterr().err.lower()
    assert "stereo" in error or "channel" in error


def test_the_whole_chain_on_the_host_and_cortex_m4_equals_python(kws, kws_run):
    reports = firmware_run(kws_run.root, "int8", ["host", "cortex-m4"])
    for report in reports:
        chain = report["chain"]
        assert chain["frontend_mismatches"] == 0 and chain["mismatches"] == 0 and chain["event_mismatches"] == 0
        assert chain["frames"] == sum(len(r.audio) // HOP - 1 for r in kws.recordings["test"])
        assert chain["python_events"] == chain["events"]
        assert chain["frontend_clips"] == len(kws.test) and chain["frontend_clip_mismatches"] == 0
    m4 = reports[1]["chain"]
    parts = m4["instructions_per_hop"]
    assert parts["frontend"] > parts["gru"] > parts["detector"] > 0 and parts["total"] > parts["frontend"]
    assert 0 < m4["duty_cycle"] < 1 and m4["clock_mhz"] == 64
