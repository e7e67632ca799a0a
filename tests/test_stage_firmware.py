"""`edgegru firmware` end to end: the generated C on host and emulated cores, measured and compared."""

import json
import re

import pytest

from edgegru.errors import EdgeGRUError
from edgegru.stages.firmware_stage import available_targets, firmware_run
from edgegru.stages.run_layout import RunLayout
from edgegru.stages.verify_stage import verify_run
from firmware_sim.codegen.model_facts import macs_per_step


@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_host_m4_m33_m55_are_bit_exact_and_measured(quantized_run, quantized, scheme):
    targets = ["host", "cortex-m4", "cortex-m33", "cortex-m55"]
    reports = firmware_run(quantized_run, scheme, targets, max_sequences=15)
    for report in reports:
        assert report["mismatches"] == 0 and report["elements"] > 15 * 7 * 16, report
        assert (RunLayout(quantized_run).firmware_dir(scheme) / report["target"] / "firmware.json").is_file()
    for report in reports[1:]:
        assert report["macs_per_step"] == macs_per_step(quantized[scheme])
        assert report["instructions_per_step_median"] > report["macs_per_step"] / 4
        hidden = quantized[scheme].config["hidden"]  # the mat-vec alone is leaner than the whole step
        assert report["matvec_shape"] == f"{3 * hidden}x{hidden}"
        assert 0.1 < report["matvec_instructions_per_mac"] < report["instructions_per_mac"]
        assert report["flash_bytes"] > quantized[scheme].weight_bytes()
        assert 0 < report["stack_bytes"] < 16384


@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_flash_and_ram_of_the_model_match_the_arithmetic(quantized_run, quantized, scheme):
    """Parameters cost at most 1.05x their integer tensor bytes; the RAM is the caller's state plus the
    step's one static scratch buffer (sizes from the ELF's symbols) plus the measured stack."""
    model = quantized[scheme]
    report = firmware_run(quantized_run, scheme, ["cortex-m4"], max_sequences=2)[0]
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


def test_instruction_counts_are_repeatable_and_a_finished_target_is_reused(quantized_run):
    first = firmware_run(quantized_run, "int8", ["cortex-m4"], max_sequences=3)[0]
    second = firmware_run(quantized_run, "int8", ["cortex-m4"], max_sequences=3)[0]
    assert not second["reused"]
    assert first["instructions_per_step_median"] == second["instructions_per_step_median"]
    assert first["instructions_per_step_max"] == second["instructions_per_step_max"]
    again = firmware_run(quantized_run, "int8", ["cortex-m4"], max_sequences=3, reuse=True)[0]
    assert again["reused"] and again["instructions_per_step_median"] == first["instructions_per_step_median"]


def test_verify_builds_the_written_sources_and_a_changed_byte_fails(quantized_run):
    firmware_run(quantized_run, "int8", ["host"], max_sequences=3)
    assert verify_run(quantized_run, "int8", ["c-host"], max_sequences=5, progress=False)["backends"]["c-host"]["bit_exact"]
    source = RunLayout(quantized_run).c_sources_dir("int8") / "edgegru_model.c"
    original = source.read_text()
    # every layout of the recurrent weights (portable, DSP, MVE): the first line of values negated
    changed = re.sub(r"(_l0_h_weights\[\d+\] = \{\n)(.*)\n",
                     lambda m: m.group(1) + re.sub(r"-?\d+", lambda v: str(-int(v.group())), m.group(2)) + "\n", original)
    assert changed != original
    source.write_text(changed)
    try:
        report = verify_run(quantized_run, "int8", ["c-host"], max_sequences=5, progress=False)
        assert not report["backends"]["c-host"]["bit_exact"]
    finally:
        source.write_text(original)


def test_unknown_target_lists_the_known_ones(quantized_run):
    with pytest.raises(EdgeGRUError, match="known targets: host"):
        firmware_run(quantized_run, "int8", ["host", "cortex-m9"])


def test_a_missing_tool_is_named_with_the_command_that_installs_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH: no compiler, no emulator
    usable, skipped = available_targets(["host", "cortex-m4"])
    assert usable == [] and set(skipped) == {"host", "cortex-m4"}
    assert "gcc" in skipped["host"] and "make toolchain" in skipped["cortex-m4"]
    assert "arm-none-eabi-gcc" in skipped["cortex-m4"] and "apt-get install" in skipped["cortex-m4"]
    record = json.dumps(skipped)
    assert "Traceback" not in record


def test_the_detector_needs_whole_recordings(quantized_run):
    from edgegru.stream_detect import DetectorConfig

    with pytest.raises(EdgeGRUError, match="--detector needs whole recordings"):
        firmware_run(quantized_run, "int8", ["host"], max_sequences=1, detector=DetectorConfig())
