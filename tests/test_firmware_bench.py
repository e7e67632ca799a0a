"""Optimized vs portable kernels, counted on the emulated Cortex-M4 (firmware_sim.bench)."""

import pytest
import torch

from firmware_sim.bench import bench_firmware, format_bench



@pytest.fixture(scope="module")
def int8_model(japanese_vowels):
    """An untrained hidden-32 int8 model: the counts do not depend on training."""
    from edgegru.calibrate import observe
    from edgegru.checkpoint import Checkpoint
    from edgegru.model import GRUClassifier, ModelConfig
    from edgegru.quantize import quantize_model

    torch.manual_seed(0)
    model = GRUClassifier(ModelConfig(12, 32, 9)).eval()
    checkpoint = Checkpoint(model, japanese_vowels.normalization(), [str(i) for i in range(9)], "japanese-vowels")
    observations = observe(model, japanese_vowels.train, checkpoint.normalization, max_sequences=16)
    return quantize_model(checkpoint, observations, "int8")


def test_optimized_path_is_not_slower_than_portable_on_cortex_m4(int8_model, tmp_path):
    rows = bench_firmware(int8_model, targets=("cortex-m4",), steps=5, repeats=3, work_dir=tmp_path)
    assert {(r["benchmark"], r["scheme"], r["shape"]) for r in rows} == {
        ("step", "int8", "hidden=32"),
        *(("matvec", s, shape) for s in ("int8", "int16x8") for shape in ("64x64", "192x64")),
    }
    for row in rows:
        assert row["target"] == "cortex-m4" and row["macs"] > 0, row
        for path in ("optimized", "portable"):
            assert row[f"{path}_instructions"] > 0 and row[f"{path}_instructions_per_mac"] > 0, row
        assert row["optimized_instructions"] <= row["portable_instructions"], row
        assert row["ratio"] >= 1.0, row
    int8_matvec = next(r for r in rows if r["benchmark"] == "matvec" and r["scheme"] == "int8")
    assert int8_matvec["ratio"] > 1.2, int8_matvec  # SMLAD: two MACs per instruction
    table = format_bench(rows)
    assert "cortex-m4" in table and "port/opt" in table and len(table.splitlines()) == len(rows) + 2
