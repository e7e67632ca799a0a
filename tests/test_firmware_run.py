"""The firmware job end to end: generated C on host and emulated cores, measured and compared."""

import pytest

from edgegru.errors import EdgeGRUError
from firmware_sim.firmware_run import firmware_run, macs_per_step
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
        assert report["flash_bytes"] > quantized[scheme].weight_bytes()
        assert 0 < report["stack_bytes"] < 16384


def test_instruction_counts_are_repeatable(quantized, japanese_vowels, tmp_path):
    require("cortex-m4")
    first = firmware_run(quantized["int8"], japanese_vowels.test, ["cortex-m4"], tmp_path / "a", max_sequences=3)[0]
    second = firmware_run(quantized["int8"], japanese_vowels.test, ["cortex-m4"], tmp_path / "b", max_sequences=3)[0]
    assert first["instructions_per_step_median"] == second["instructions_per_step_median"]
    assert first["instructions_per_step_max"] == second["instructions_per_step_max"]


def test_unknown_target_lists_the_known_ones(quantized, japanese_vowels, tmp_path):
    with pytest.raises(EdgeGRUError, match="known targets: host"):
        firmware_run(quantized["int8"], japanese_vowels.test, ["host", "cortex-m9"], tmp_path)
