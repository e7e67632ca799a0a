"""The firmware job end to end: generated C on host and emulated cores, measured and compared."""

import pytest

from edgegru.errors import EdgeGRUError
from firmware_sim.c_model import macs_per_step
from firmware_sim.firmware_run import firmware_run
from firmware_sim.targets import get_target, require_toolchain


def require(target):
    try:
        require_toolchain(get_target(target))
    except EdgeGRUError as error:
        pytest.skip(str(error))


@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_host_m4_m33_m55_are_bit_exact_and_measured(quantized, japanese_vowels, tmp_path, scheme):
    targets = ["host", "cortex-m4", "cortex-m33", "cortex-m55"]
    for target in targets:
        require(target)
    reports = firmware_run(quantized[scheme], japanese_vowels.test, targets, tmp_path, max_sequences=15)
    for report in reports:
        assert report["mismatches"] == 0 and report["elements"] > 15 * 7 * 16, report
        assert (tmp_path / report["target"] / "firmware.json").is_file()
    for report in reports[1:]:
        assert report["macs_per_step"] == macs_per_step(quantized[scheme])
        assert report["instructions_per_step_median"] > report["macs_per_step"] / 4
        hidden = quantized[scheme].config["hidden"]  # the mat-vec alone is leaner than the whole step
        assert report["matvec_shape"] == f"{3 * hidden}x{hidden}"
        assert 0.1 < report["matvec_instructions_per_mac"] < report["instructions_per_mac"]
        assert report["flash_bytes"] > quantized[scheme].weight_bytes()
        assert 0 < report["stack_bytes"] < 16384


@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_flash_and_ram_of_the_model_match_the_arithmetic(quantized, japanese_vowels, tmp_path, scheme):
    """Parameters cost at most 1.05x their integer tensor bytes; the RAM is the caller's state plus the
    step's one static scratch buffer (sizes from the ELF's symbols) plus the measured stack."""
    require("cortex-m4")
    model = quantized[scheme]
    report = firmware_run(model, japanese_vowels.test, ["cortex-m4"], tmp_path, max_sequences=2)[0]
    assert report["parameter_tensor_bytes"] == model.weight_bytes()
    weight_only = sum(w.nbytes for w in model.weights.values())  # int16x8 biases are int64 in the artifact, int32 in C
    assert weight_only < report["parameter_flash_bytes"] <= 1.05 * model.weight_bytes()
    cfg = model.config
    hidden, itemsize = cfg["hidden"], 1 if scheme == "int8" else 2
    assert report["state_bytes"] == cfg["layers"] * hidden * itemsize
    if scheme == "int8":  # fused: int32 accumulators, widened x; int8 FC outputs gx, gh, gates r, z, n (+ r * h)
        int8_bytes = (6 + 3 + (0 if cfg["variant"] == "reset_after" else 1)) * hidden
        words = max(3 * hidden, cfg["num_classes"]) + (max(cfg["input_size"], hidden) + 1) // 2
        expected = 4 * words + -(-int8_bytes // 4) * 4
    else:  # generic: every intermediate tensor of the step graph that is not state or output
        expected = itemsize * sum(len(model.weights[op.weight]) if op.kind == "fully_connected" else hidden
                                  for op in model.ops if op.output != "logits" and not op.output.endswith("h_new"))
    assert report["scratch_bytes"] == expected
    assert report["ram_bytes"] == report["state_bytes"] + report["scratch_bytes"] + report["stack_bytes"]


def test_instruction_counts_are_repeatable(quantized, japanese_vowels, tmp_path):
    require("cortex-m4")
    first = firmware_run(quantized["int8"], japanese_vowels.test, ["cortex-m4"], tmp_path / "a", max_sequences=3)[0]
    second = firmware_run(quantized["int8"], japanese_vowels.test, ["cortex-m4"], tmp_path / "b", max_sequences=3)[0]
    assert first["instructions_per_step_median"] == second["instructions_per_step_median"]
    assert first["instructions_per_step_max"] == second["instructions_per_step_max"]


def test_unknown_target_lists_the_known_ones(quantized, japanese_vowels, tmp_path):
    with pytest.raises(EdgeGRUError, match="known targets: host"):
        firmware_run(quantized["int8"], japanese_vowels.test, ["host", "cortex-m9"], tmp_path)
