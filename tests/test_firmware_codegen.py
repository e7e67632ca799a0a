"""The generated C model, built with the host compiler, against the golden model: every element of every
step of japanese-vowels test sequences, int8 and int16x8, both GRU variants (via `small_checkpoint`)."""

from __future__ import annotations

import copy
import dataclasses
import re
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgegru.errors import EdgeGRUError
from edgegru.fixedpoint import multiply_by_quantized_multiplier
from edgegru.golden import quantize_features
from edgegru.integer_ops import SIGMOID_TABLE_UINT16
from export.verify import golden_trace
from firmware_sim.codegen import KERNEL_DIR, generate_c
from firmware_sim.codegen_int8 import MAX_RIGHT_SHIFT, block_layout, fused_int8_refusal, pair_layout, requant_fields
from firmware_sim.host import CFLAGS, decode_stream, encode_stream, run_host, write_sources

SEQUENCES = 60

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None,
                               reason="gcc not installed (apt-get install gcc): the C model cannot be built")


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


@needs_gcc
@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_host_model_is_bit_exact_with_golden(quantized, japanese_vowels, scheme):
    model = quantized[scheme]
    x_q, lengths = _test_sequences(model, japanese_vowels.test)
    logits, states = run_host(model, x_q, lengths)
    mismatches, elements = count_mismatches(model, x_q, lengths, logits, states)
    assert mismatches == 0, f"{mismatches} of {elements} elements differ from the golden model"


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55"])
@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_dsp_and_mve_kernels_are_bit_exact_on_qemu(quantized, japanese_vowels, tmp_path, scheme, target):
    """Cortex-M4 takes the DSP (SXTB16/SMLAD) dot products, Cortex-M55 the MVE ones."""
    targets = pytest.importorskip("firmware_sim.targets")
    from firmware_sim.build import build
    from firmware_sim.run import run

    try:
        targets.require_toolchain(targets.get_target(target))
    except EdgeGRUError as error:
        pytest.skip(str(error))
    model = quantized[scheme]
    x_q, lengths = _test_sequences(model, japanese_vowels.test, 40)
    sources = write_sources(model, tmp_path, "vowels")
    result = run(target, build(target, sources, include_dirs=[tmp_path], out_dir=tmp_path),
                 encode_stream(x_q, lengths), timeout_s=600)
    assert result.exit_code == 0 and result.fault_kind is None, result.stderr
    logits, states = decode_stream(model, result.stdout, x_q.shape[1], lengths)
    mismatches, elements = count_mismatches(model, x_q, lengths, logits, states)
    assert mismatches == 0, f"{target}: {mismatches} of {elements} elements differ from the golden model"


def test_generation_is_deterministic(quantized):
    for model in quantized.values():
        first, second = generate_c(model, "vowels"), generate_c(model, "vowels")
        assert first == second
        assert set(first) == {"vowels.h", "vowels.c"}


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


@needs_gcc
@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_compiles_warning_free(quantized, tmp_path, compiler):
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not installed (apt-get install {compiler})")
    for scheme, model in quantized.items():
        directory = tmp_path / scheme
        sources = write_sources(model, directory, "vowels")
        for flags in ((), ("-DEDGEGRU_PORTABLE",)):
            result = subprocess.run([compiler, *CFLAGS, *flags, "-c", *map(str, sources)], cwd=directory,
                                    capture_output=True, text=True)
            assert result.returncode == 0 and not result.stderr, result.stderr


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


@needs_gcc
def test_a_model_the_fused_kernels_refuse_runs_on_the_generic_ones(quantized, japanese_vowels):
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
    logits, states = run_host(model, x_q, lengths)
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


def test_kernel_sigmoid_table_is_the_golden_one():
    from firmware_sim.codegen import kernel_sources

    text = kernel_sources()["edgegru_sigmoid_table.h"]
    body = text.split("sigmoid_table_uint16[256] = {")[1].split("};")[0]
    assert [int(v) for v in re.findall(r"\d+", body)] == SIGMOID_TABLE_UINT16.tolist()


def test_refuses_accumulators_beyond_32_bits(quantized):
    model = quantized["int8"]
    wide = dataclasses.replace(model, meta={**model.meta, "max_accumulator_bits": 33})
    with pytest.raises(EdgeGRUError, match="accumulators need 33 bits"):
        generate_c(wide, "vowels")


def test_refuses_a_name_that_is_not_a_c_identifier(quantized):
    with pytest.raises(EdgeGRUError, match="C identifier"):
        generate_c(quantized["int8"], "my-model")
