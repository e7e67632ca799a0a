"""Training determinism, accuracy on a fast real dataset, and the CLI's error contract."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgegru.checkpoint import load_checkpoint, save_checkpoint
from edgegru.errors import EdgeGRUError
from edgegru.train import TrainConfig, accuracy, train
from tests.conftest import write_npz


def run_cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "edgegru", *args], capture_output=True, text=True, cwd=cwd, env=env)


@pytest.mark.parametrize("variant", ["reset_after", "reset_before"])
def test_digits_reaches_the_published_accuracy(digits, variant):
    checkpoint, metrics = train(digits, TrainConfig(hidden=64, variant=variant), progress=False)
    assert metrics["test_accuracy"] >= 0.95
    assert metrics["test_accuracy"] == accuracy(checkpoint.model, digits.test, checkpoint.normalization)


def test_checkpoint_round_trip(tmp_path, small_checkpoint, japanese_vowels):
    save_checkpoint(tmp_path / "model.pt", small_checkpoint)
    loaded = load_checkpoint(tmp_path)
    assert loaded.model.config == small_checkpoint.model.config
    assert accuracy(loaded.model, japanese_vowels.test, loaded.normalization) == accuracy(
        small_checkpoint.model, japanese_vowels.test, small_checkpoint.normalization)


@pytest.mark.parametrize("content, message", [
    (b"", "not a readable EdgeGRU checkpoint"),
    (b"PK\x03\x04garbage", "not a readable EdgeGRU checkpoint"),
])
def test_unreadable_checkpoint(tmp_path, content, message):
    (tmp_path / "model.pt").write_bytes(content)
    with pytest.raises(EdgeGRUError, match=message):
        load_checkpoint(tmp_path)


def test_foreign_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "model.pt")
    with pytest.raises(EdgeGRUError, match="not an EdgeGRU checkpoint"):
        load_checkpoint(tmp_path)
    result = run_cli("info", str(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "not an EdgeGRU checkpoint" in result.stderr


def test_cli_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0 and "train" in result.stdout and "demo" in result.stdout


def test_cli_unknown_dataset_lists_available(tmp_path):
    result = run_cli("train", "--dataset", "mnist", "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert "available: watch, japanese-vowels, basic-motions, digits" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_train_writes_artifacts_and_a_failed_run_keeps_them(tmp_path):
    rng = np.random.default_rng(0)
    good = write_npz(tmp_path / "good.npz", X=rng.normal(size=(40, 5, 2)).astype(np.float32), y=rng.integers(0, 2, 40))
    out = tmp_path / "run"
    result = run_cli("train", "--dataset", str(good), "--hidden", "4", "--epochs", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    import json
    metrics = json.loads((out / "train.json").read_text())
    for key in ("dataset", "hidden", "layers", "variant", "params", "val_accuracy", "test_accuracy", "seed", "train_seconds"):
        assert key in metrics
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    bad_x = rng.normal(size=(40, 5, 2))
    bad_x[3, 2, 1] = np.inf
    bad = write_npz(tmp_path / "bad.npz", X=bad_x, y=rng.integers(0, 2, 40))
    result = run_cli("train", "--dataset", str(bad), "--hidden", "4", "--epochs", "1", "--out", str(out))
    assert result.returncode == 2 and "NaN or inf" in result.stderr and result.stderr.count("\n") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def path_without(tmp_path, *prefixes: str) -> str:
    """A PATH with every command of this machine but those starting with `prefixes`: a machine where
    they were never installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        for tool in Path(directory).glob("*") if Path(directory).is_dir() else ():
            if not tool.name.startswith(prefixes) and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    return str(bin_dir)


def test_demo_without_the_cortex_m_toolchain_then_again_with_it(tmp_path):
    out = tmp_path / "demo"
    args = ("demo", "--dataset", "digits", "--hidden", "8", "--epochs", "1", "--out", str(out))
    bare = dict(os.environ, PATH=path_without(tmp_path, "arm-none-eabi-", "qemu-"))
    first = run_cli(*args, env=bare)
    assert first.returncode == 0, first.stderr
    for stage in ("test accuracy", "int8 (minmax calibration", "int16x8 (minmax calibration", "tflm", "onnxruntime",
                  "host"):
        assert stage in first.stdout
    skipped = [line for line in first.stdout.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and "cortex-m4, cortex-m55" in skipped[0] and "make toolchain" in skipped[0]
    assert (out / "export" / "int8" / "model.tflite").is_file()
    model = (out / "model.pt").stat().st_mtime_ns

    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert "reused the finished run" in second.stdout and (out / "model.pt").stat().st_mtime_ns == model
    assert "skipped" not in second.stdout and "cortex-m4" in second.stdout and "cortex-m55" in second.stdout
    assert "(unchanged, kept)" in second.stdout and "unchanged: earlier result" in second.stdout
