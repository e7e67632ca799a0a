"""Shared fixtures: small, fast runs trained once per session."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from edgegru.data import load_dataset
from edgegru.train import TrainConfig, train


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def japanese_vowels():
    return load_dataset("japanese-vowels")


@pytest.fixture(scope="session", params=["reset_after", "reset_before"])
def small_checkpoint(request, japanese_vowels):
    """A hidden-16 model on japanese-vowels (variable lengths), 60 updates: fast, about 0.83 accurate."""
    checkpoint, _ = train(japanese_vowels, TrainConfig(hidden=16, steps=60, variant=request.param), progress=False)
    return checkpoint


def in_a_fresh_interpreter(code: str, *args: str, hash_seed: str = "12345") -> bytes:
    """stdout of `code` run by this venv's Python in a new process (its own hash seed, one thread): a
    determinism test compares what it makes with what this process made."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=root, env=env, capture_output=True, timeout=600)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return out.stdout


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="session")
def quantized(small_checkpoint, japanese_vowels):
    """The small checkpoint quantized in both schemes: {scheme: QuantizedModel}."""
    from edgegru.calibrate import observe
    from edgegru.quantize import quantize_model

    observations = observe(small_checkpoint.model, japanese_vowels.train, small_checkpoint.normalization)
    return {scheme: quantize_model(small_checkpoint, observations, scheme) for scheme in ("int8", "int16x8")}


@pytest.fixture(scope="session")
def quantized_run(tmp_path_factory, small_checkpoint, quantized):
    """A run directory holding the small checkpoint and its two quantized artifacts (as `edgegru train`
    and `edgegru quantize` leave them)."""
    from edgegru.artifact import save_artifact
    from edgegru.checkpoint import save_checkpoint
    from edgegru.stages.run_layout import RunLayout

    layout = RunLayout(tmp_path_factory.mktemp("run") / "japanese-vowels")
    save_checkpoint(layout.checkpoint, small_checkpoint)
    for scheme, model in quantized.items():
        save_artifact(layout.quant_dir(scheme), model)
    return layout.root
