"""The run-level stages: reuse of finished work, verification of the files that ship, modes of files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from edgegru.artifact import load_artifact
from edgegru.atomic import write_bytes_atomic
from edgegru.errors import EdgeGRUError
from edgegru.stages.export_stage import export_run
from edgegru.stages.quantize_stage import quantize_run
from edgegru.stages.run_layout import RunLayout
from edgegru.stages.train_stage import train_run
from edgegru.stages.verify_stage import not_bit_exact, verify_run
from edgegru.train import TrainConfig

CONFIG = TrainConfig(hidden=8, epochs=1)


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "edgegru", *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory):
    """digits, H=8, one epoch: trained, quantized int8 and exported in both formats."""
    out = tmp_path_factory.mktemp("run") / "digits"
    train_run("digits", CONFIG, out, progress=False)
    quantize_run(out, "int8")
    for fmt in ("tflite", "onnx"):
        export_run(out, "int8", fmt)
    return out


def test_files_get_the_mode_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_bytes_atomic(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_finished_run_is_reused_and_a_changed_one_is_not(exported_run):
    layout = RunLayout(exported_run)
    model_bytes, mtime = layout.checkpoint.read_bytes(), layout.checkpoint.stat().st_mtime_ns
    again = train_run("digits", CONFIG, exported_run, progress=False)
    assert again["reused"] and layout.checkpoint.stat().st_mtime_ns == mtime
    assert quantize_run(exported_run, "int8")["reused"]
    assert export_run(exported_run, "int8", "tflite")["reused"]
    other = train_run("digits", TrainConfig(hidden=8, epochs=1, seed=1), exported_run.parent / "other", progress=False)
    assert not other["reused"]
    assert layout.checkpoint.read_bytes() == model_bytes


def test_verify_runs_the_exported_file_and_a_flipped_weight_fails(exported_run, tmp_path):
    report = verify_run(exported_run, "int8", ["tflm"], max_sequences=20, progress=False)
    assert report["backends"]["tflm"]["bit_exact"] and not not_bit_exact(report)
    tflite = RunLayout(exported_run).export_dir("int8") / "model.tflite"
    original = tflite.read_bytes()
    weights = load_artifact(RunLayout(exported_run).quant_dir("int8")).weights["l0.W_hr"].tobytes()
    at = original.find(weights)
    assert at > 0, "the recurrent weights are stored as they are"
    flipped = bytearray(original)
    flipped[at + 3] ^= 0x40
    tflite.write_bytes(bytes(flipped))
    try:
        result = run_cli("verify", str(exported_run), "--scheme", "int8", "--backends", "tflm", "--max-sequences", "20")
        assert result.returncode == 2, result.stdout
        assert "not bit-exact" in result.stderr and "Traceback" not in result.stderr
    finally:
        tflite.write_bytes(original)


def test_verify_keeps_every_backends_latest_result(exported_run):
    verify_run(exported_run, "int8", ["tflm"], max_sequences=5, progress=False)
    verify_run(exported_run, "int8", ["onnxruntime"], max_sequences=5, progress=False)
    record = json.loads(RunLayout(exported_run).verify_json("int8").read_text())
    assert set(record["backends"]) >= {"tflm", "onnxruntime"}
    assert all(r["bit_exact"] for r in record["backends"].values())


def test_a_missing_or_stale_export_names_the_command(exported_run, tmp_path):
    layout = RunLayout(exported_run)
    onnx = layout.export_dir("int8") / "model.onnx"
    saved = onnx.read_bytes()
    onnx.unlink()
    try:
        with pytest.raises(EdgeGRUError, match="edgegru export .* --format onnx"):
            verify_run(exported_run, "int8", ["onnxruntime"], max_sequences=2, progress=False)
    finally:
        onnx.write_bytes(saved)
    manifest = layout.export_manifest("int8")
    saved = manifest.read_text()
    record = json.loads(saved)
    record["tflite"]["artifact_sha256"] = "0" * 64
    manifest.write_text(json.dumps(record))
    try:
        with pytest.raises(EdgeGRUError, match="stale"):
            verify_run(exported_run, "int8", ["tflm"], max_sequences=2, progress=False)
    finally:
        manifest.write_text(saved)


def test_seeds_report_mean_and_spread_and_reuse_finished_seeds(tmp_path):
    from edgegru.stages.train_stage import train_seeds_run

    summary = train_seeds_run("digits", CONFIG, 2, tmp_path / "digits", progress=False)
    tests = [run["test_accuracy"] for run in summary["runs"]]
    assert summary["seeds"] == [0, 1] and (tmp_path / "digits" / "seed-1" / "model.pt").is_file()
    assert summary["test_accuracy"]["mean"] == round(float(np.mean(tests)), 4)
    assert summary["test_accuracy"]["std"] == round(float(np.std(tests, ddof=1)), 4)
    again = train_seeds_run("digits", CONFIG, 2, tmp_path / "digits", progress=False)
    assert all(run["reused"] for run in again["runs"])
    assert json.loads((tmp_path / "digits" / "seeds.json").read_text())["test_accuracy"] == summary["test_accuracy"]
