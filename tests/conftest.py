"""Shared fixtures: small, fast runs trained once per session."""

from __future__ import annotations

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
    """A hidden-16 model on japanese-vowels (variable lengths), a few epochs: fast, not accurate."""
    checkpoint, _ = train(japanese_vowels, TrainConfig(hidden=16, epochs=4, variant=request.param), progress=False)
    return checkpoint


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
