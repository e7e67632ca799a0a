"""The generated C model, built for the host (and the emulated Cortex-M4/M55) through the one `build`, against
the golden model: every element of every step of japanese-vowels test sequences, int8 and int16x8, both GRU
variants (via `small_checkpoint`)."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgegru.artifact import save_artifact
from edgegru.errors import EdgeGRUError
from edgegru.fixedpoint import INT32_MAX, INT32_MIN, multiply_by_q15_multiplier, multiply_by_quantized_multiplier
from edgegru.golden import quantize_features
from edgegru.integer_ops import SIGMOID_TABLE_UINT16, Int16ActivationParams, logistic_int16, tanh_int16
from export.verify import golden_trace
from firmware_sim.codegen.fused_int8_step import (MAX_RIGHT_SHIFT, block_layout, fused_int8_refusal, pair_layout,
                                                  requant_fields)
from firmware_sim.codegen.harness import check_stream_input, decode_stream, encode_stream, write_sources
from firmware_sim.codegen.kernel_library import KERNEL_DIR, kernel_sources
from firmware_sim.codegen.model_source import generate_c
from firmware_sim.device.build import build
from firmware_sim.device.execute import run
from firmware_sim.device.targets import get_target

SEQUENCES = 60



def run_c(model, x_q, lengths, directory, target="host", timeout_s=600):
    """Every sequence through the generated C program built for `target`, in one run (a batch stream):
    (logits [N, T, C], [state [N, T, H] per layer])."""
    x_q, lengths = check_stream_input(model, x_q, lengths)
    sources = write_sources(model, directory, "vowels")
    exe = build(get_target(target), sources, include_dirs=[directory], out_dir=directory)
    result = run(target, exe, encode_stream(x_q, lengths), timeout_s=timeout_s)
    assert result.exit_code == 0 and result.fault_kind is None, result.stderr
    return decode_stream(model, result.stdout, x_q.shape[1], lengths)


def count_mismatches(model, x_q, lengths, logits, states) -> tuple[int, int]:
    """(differing elements, compared elements) of every step's logits and states vs the golden trace."""
    trace = golden_trace(model, x_q, lengths, "double")
    mismatches = elements = 0
    for t, golden in enumerate(trace):
        active = t < lengths
        for name, ours in zip(["logits"] + [h_out for _, h_out in model.states], [logits] + states):
            diff = ours[active, t].astype(np.int64) != golden[name][active].astype(np.int64)
            mismatches += int(diff.sum())
            elements += diff.size
    per_step = model.config["num_classes"] + model.config["layers"] * model.config["hidden"]
    assert elements == int(lengths.sum()) * per_step
    return mismatches, elements


def _test_sequences(model, split, count=SEQUENCES):
    x_q = quantize_features(model, split.x[:count])
    assert len(x_q) >= 40
    return x_q, split.lengths[:count]


@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_host_model_is_bit_exact_with_golden(quantized, japanese_vowels, tmp_path, scheme):
    model = quantized[scheme]
    x_q, lengths = _test_sequences(model, japanese_vowels.test)
    logits, states = run_c(model, x_q, lengths, tmp_path)
    mismatches, elements = count_mismatches(model, x_q, lengths, logits, states)
    assert mismatches == 0, f"{mismatches} of {elements} elements differ from the golden model"


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55"])
@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_dsp_and_mve_kernels_are_bit_exact_on_qemu(quantized, japanese_vowels, tmp_path, scheme, target):
    """Cortex-M4 takes the DSP (SXTB16/SMLAD) dot products, Cortex-M55 the MVE ones."""
    model = quantized[scheme]
    x_q, lengths = _test_sequences(model, japanese_vowels.test, 40)
    logits, states = run_c(model, x_q, lengths, tmp_path, target)
    mismatches, elements = count_mismatches(model, x_q, lengths, logits, states)
    assert mismatches == 0, f"{target}: {mismatches} of {elements} elements differ from the golden model"


# The second generation: the model saved as an artifact, loaded and generated in a fresh interpreter.
GENERATE_ELSEWHERE = """
import sys
from edgegru.artifact import load_artifact
from firmware_sim.codegen.harness import write_sources
write_sources(load_artifact(sys.argv[1]), sys.argv[2], "vowels")
"""


def test_generation_is_deterministic(quantized, tmp_path):
    """Every generated file (model, kernels, harness) is byte-identical when generated again in a fresh
    interpreter from the saved artifact, with other string hashes (PYTHONHASHSEED): nothing depends on
    set or hash order, on process state, or on anything the artifact does not carry."""
    seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    env = {**os.environ, "PYTHONHASHSEED": seed, "OMP_NUM_THREADS": "1"}
    for scheme, model in quantized.items():
        artifact, here, there = (tmp_path / scheme / part for part in ("artifact", "here", "there"))
        artifact.mkdir(parents=True)
        save_artifact(artifact, model)
        write_sources(model, here, "vowels")
        done = subprocess.run([sys.executable, "-c", GENERATE_ELSEWHERE, str(artifact), str(there)], env=env,
                              cwd=Path(__file__).resolve().parents[1], capture_output=True, timeout=600)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        names = sorted(path.name for path in here.iterdir())
        assert {"vowels.h", "vowels.c", "main.c"} <= set(names)
        assert names == sorted(path.name for path in there.iterdir())
        for name in names:
            assert (here / name).read_bytes() == (there / name).read_bytes(), f"{scheme}: {name} differs"


def test_public_symbols_carry_the_name(quantized):
    sources = generate_c(quantized["int8"], "vowels")
    header = sources["vowels.h"]
    for symbol in re.findall(r"^#define (\w+)", header, flags=re.M):
        assert symbol.startswith("VOWELS_")
    assert "void vowels_step(vowels_state_t *state, const int8_t *features, int8_t *logits);" in header
    assert "void vowels_reset(vowels_state_t *state);" in header
    for symbol in re.findall(r"^static const \w+ (\w+)", sources["vowels.c"], flags=re.M):
        assert symbol.startswith("vowels_")
    assert "float" not in sources["vowels.c"] and "double" not in sources["vowels.c"]


@pytest.mark.parametrize("target", ["host", "host-clang"])
def test_compiles_warning_free(quantized, tmp_path, target):
    """-Wall -Wextra -Werror -pedantic (build's one set of C flags): a warning fails the build."""
    get_target(target)
    for scheme, model in quantized.items():
        for path, defines in (("optimized", None), ("portable", {"EDGEGRU_PORTABLE": None})):
            directory = tmp_path / scheme / path
            sources = write_sources(model, directory, "vowels")
            assert build(target, sources, include_dirs=[directory], out_dir=directory, defines=defines).is_file()


def test_kernels_use_only_stdint_and_string():
    """Outside the target paths' own blocks the kernels include only <stdint.h> and <string.h>."""
    for path in KERNEL_DIR.glob("edgegru_*.[ch]"):
        text = path.read_text()
        portable = re.sub(r"#if defined\(EDGEGRU_USE_(MVE|DSP)\)[^\n]*\n(#include <arm_\w+\.h>\n)+#endif", "", text)
        assert set(re.findall(r"#include <([\w./]+)>", portable)) <= {"stdint.h", "string.h"}, path.name
        code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        assert not re.search(r"\b(malloc|free|float|double)\b", code), path.name


def test_int8_models_take_the_fused_kernels(quantized):
    assert fused_int8_refusal(quantized["int8"]) is None
    assert "edgegru_gate_int8(" in generate_c(quantized["int8"], "vowels")["vowels.c"]
    assert "edgegru_gate_int8(" not in generate_c(quantized["int16x8"], "vowels")["vowels.c"]


def test_a_model_the_fused_kernels_refuse_runs_on_the_generic_ones(quantized, japanese_vowels, tmp_path):
    """An FC channel without a right shift (real multiplier >= 1/2) is outside the fused requantization:
    the generator falls back to the per-operator kernels, still bit-exact."""
    model = copy.deepcopy(quantized["int8"])
    params = model.op_params["l0.hz"]
    shifts = np.array(params.output_shift).copy()
    shifts[0] = 0
    model.op_params["l0.hz"] = dataclasses.replace(params, output_shift=shifts)
    assert "l0.hz" in fused_int8_refusal(model)
    assert "edgegru_gate_int8(" not in generate_c(model, "vowels")["vowels.c"]
    x_q, lengths = _test_sequences(model, japanese_vowels.test, 40)
    logits, states = run_c(model, x_q, lengths, tmp_path)
    mismatches, elements = count_mismatches(model, x_q, lengths, logits, states)
    assert mismatches == 0, f"{mismatches} of {elements} elements differ from the golden model"


@settings(max_examples=2000, deadline=None)
@given(v=st.integers(-(2**30) + 1, 2**30 - 1), multiplier=st.integers(2**30, 2**31 - 1),
       exponent=st.integers(1, MAX_RIGHT_SHIFT), zero_point=st.integers(-128, 127))
def test_fused_requantization_identity(v, multiplier, exponent, zero_point):
    """Both forms of edgegru_gru_int8_kernels.h's requantization (the scalar 64-bit multiply-add and the MVE
    VQRDMULH-then-shift) equal the spec's SRDHM, rounding divide and zero point, within int32/int64."""
    fields = requant_fields(multiplier, -exponent, zero_point)
    nudge = int(fields["nudge"])
    assert int(fields["exponent"]) == exponent and abs(nudge) + 2**30 < 2**31
    spec = int(multiply_by_quantized_multiplier(v, multiplier, -exponent, "double")) + zero_point
    high = (nudge + (v >> 31)) * 2**32 + 2**31 + 2 * v * multiplier
    assert -(2**63) <= high < 2**63
    scalar = (high >> 32) >> exponent
    t = (2 * v * multiplier + 2**31) >> 32  # VQRDMULH
    vector = (t + (t >> 31) + nudge) >> exponent
    assert scalar == spec and vector == spec  # exact before the saturation both then apply


def test_weight_layouts_keep_the_weight_bytes():
    """The DSP layout is a permutation of halfwords: two int8 rows per pair, padding only for odd sizes.
    The MVE layout is a permutation of the bytes, in the order its kernel reads them."""
    rng = np.random.default_rng(0)
    for rows, cols in ((192, 64), (7, 64), (192, 6), (5, 3), (9, 37)):
        weights = rng.integers(-127, 128, size=(rows, cols), dtype=np.int8)
        packed = pair_layout(weights)
        assert packed.dtype == np.int32 and packed.nbytes == (rows + rows % 2) * (cols + cols % 2)
        blocked = block_layout(weights)
        assert blocked.nbytes == weights.nbytes and sorted(blocked.tolist()) == sorted(weights.reshape(-1).tolist())
        first_chunk = min(16, cols)
        assert blocked[first_chunk:2 * first_chunk].tolist() == weights[1, :first_chunk].tolist()


# Records of int32 {kind, a, b, c} on stdin, one int32 out per record.  kind 0: the 16x8 requantization
# edgegru_multiply_by_q15_multiplier(x = a, multiplier_q15 = b, shift = c); kind 1 / 2: int16 LOGISTIC /
# TANH of x = c with input_multiplier a and input_left_shift b.
KERNEL_CHECK = r"""
#include <stdio.h>

#include "edgegru_kernels.h"

int main(void)
{
    int32_t r[4];
    while (fread(r, sizeof r[0], 4, stdin) == 4) {
        int32_t out;
        if (r[0] == 0) {
            out = edgegru_multiply_by_q15_multiplier(r[1], r[2], r[3]);
        } else {
            edgegru_int16_activation_params_t p;
            const int16_t x = (int16_t)r[3];
            int16_t y;
            p.input_multiplier = r[1];
            p.input_left_shift = r[2];
            if (r[0] == 1) {
                edgegru_logistic_int16(&p, &x, &y, 1);
            } else {
                edgegru_tanh_int16(&p, &x, &y, 1);
            }
            out = y;
        }
        fwrite(&out, sizeof out, 1, stdout);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
"""


def test_q15_requantization_and_int16_activations_are_the_golden_ones(quantized, tmp_path):
    """The C kernels that read the prepared values against their golden functions, on the host:
    edgegru_multiply_by_q15_multiplier vs fixedpoint.multiply_by_q15_multiplier over int32 accumulators
    (extremes, ties, random), Q15 multipliers in [0, 32767] and every shift in [-31, 14]; int16
    LOGISTIC/TANH vs integer_ops on every int16 input, at the power-of-two scale's (3, 0), the model's
    parameters and the extremes the generator allows."""
    get_target("host")
    rng = np.random.default_rng(0)
    xs = np.concatenate([[INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX],
                         [sign * (2**k + tie) for k in range(1, 31) for sign in (-1, 1) for tie in (-1, 0, 1)],
                         rng.integers(INT32_MIN, INT32_MAX, size=40, endpoint=True),
                         rng.integers(-(2**20), 2**20, size=20)])
    m15s = np.concatenate([[0, 1, 2, 16383, 16384, 32766, 32767], rng.integers(0, 32767, size=8, endpoint=True)])
    x, m15, shift = (a.reshape(-1) for a in np.meshgrid(xs, m15s, np.arange(-31, 15), indexing="ij"))
    records = [np.stack([np.zeros_like(x), x, m15, shift], axis=1)]
    expected = [multiply_by_q15_multiplier(x, m15, shift)]
    params = {(3, 0), (32767, 0), (16384, 31), (32767, 31), (1, 0), (1, 31)}
    params |= {(p.input_multiplier, p.input_left_shift) for p in quantized["int16x8"].op_params.values()
               if isinstance(p, Int16ActivationParams)}
    every = np.arange(-(2**15), 2**15, dtype=np.int64)
    for kind, golden in ((1, logistic_int16), (2, tanh_int16)):
        for multiplier, left_shift in sorted(params):
            records.append(np.stack([np.full_like(every, kind), np.full_like(every, multiplier),
                                     np.full_like(every, left_shift), every], axis=1))
            expected.append(golden(every.astype(np.int16), Int16ActivationParams(multiplier, left_shift)))
    (tmp_path / "kernel_check.c").write_text(KERNEL_CHECK)
    for filename, text in kernel_sources().items():
        (tmp_path / filename).write_text(text)
    exe = build("host", [tmp_path / "kernel_check.c", tmp_path / "edgegru_kernels.c"], include_dirs=[tmp_path],
                out_dir=tmp_path)
    result = run("host", exe, np.concatenate(records).astype("<i4").tobytes(), timeout_s=120)
    assert result.exit_code == 0, result.stderr
    ours = np.frombuffer(result.stdout, dtype="<i4").astype(np.int64)
    golden = np.concatenate([np.asarray(e, dtype=np.int64) for e in expected])
    assert ours.shape == golden.shape
    wrong = np.flatnonzero(ours != golden)
    assert wrong.size == 0, f"{wrong.size} differ, first: {np.concatenate(records)[wrong[0]].tolist()}"


def test_kernel_sigmoid_table_is_the_golden_one():
    text = kernel_sources()["edgegru_sigmoid_table.h"]
    body = text.split("sigmoid_table_uint16[256] = {")[1].split("};")[0]
    assert [int(v) for v in re.findall(r"\d+", body)] == SIGMOID_TABLE_UINT16.tolist()


def test_refuses_accumulators_beyond_32_bits(quantized):
    model = quantized["int8"]
    wide = dataclasses.replace(model, meta={**model.meta, "max_accumulator_bits": 33})
    with pytest.raises(EdgeGRUError, match="accumulators need 33 bits"):
        generate_c(wide, "vowels")


def test_refuses_int16x8_parameters_that_are_not_the_prepared_ones(quantized):
    """The C reads the prepared values: no Q15 multiplier, or the runtimes' unresolved multiplier 0 of the
    power-of-two LOGISTIC/TANH input scale, is refused rather than re-derived."""
    model = quantized["int16x8"]
    fc = next(op.output for op in model.ops if op.kind == "fully_connected")
    activation = next(op.output for op in model.ops if op.kind in ("logistic", "tanh"))
    for output, params, message in (
            (fc, dataclasses.replace(model.op_params[fc], output_multiplier_q15=None), "output_multiplier_q15"),
            (activation, Int16ActivationParams(0, 0), "input rescaling")):
        broken = dataclasses.replace(model, op_params={**model.op_params, output: params})
        with pytest.raises(EdgeGRUError, match=message):
            generate_c(broken, "vowels")


def test_refuses_a_name_that_is_not_a_c_identifier(quantized):
    with pytest.raises(EdgeGRUError, match="C identifier"):
        generate_c(quantized["int8"], "my-model")
