"""Optimized vs portable kernels on the emulated Cortex-M cores, in exact instruction counts.

Two measurements per target, each built twice: with the default macros (the target's optimized dot
products: Arm DSP extension SMLAD on Cortex-M4, Helium MVE on Cortex-M55) and with `EDGEGRU_PORTABLE`
defined (the plain C loops).

- Whole step (`benchmark == "step"`): the generated model and the stream harness (`codegen.harness.write_sources`),
  `steps` random steps of one sequence, one instruction-count window per `<name>_step` call.  The
  median over the steps is reported as is (like `edgegru firmware`: it includes the few instructions of
  the marker window itself); instructions per MAC = that / `macs_per_step(model)`.  The outputs of
  both builds are checked to be identical.
- Mat-vec alone (`benchmark == "matvec"`): a small C program (`matvec_source`) computes acc = W x
  for a `rows x cols` int8 weight matrix (64x64 and 192x64 by default; int8 inputs through the
  fused step's `edgegru_matvec_int8`, int16x8 inputs through `edgegru_dot_int16x8` per row) between
  the markers, `repeats` times.  Steady state = median over the repeats, minus the empty-window overhead measured in the
  same program; instructions per MAC = that / (rows * cols).  The accumulators are checked against
  numpy.

`bench_firmware(model)` returns one dict per (target, benchmark, scheme, shape); `format_bench(rows)`
renders them as a table with the portable path beside the optimized one and their ratio.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgegru.errors import EdgeGRUError
from edgegru.tensor_quant import get_scheme
from edgegru.quantize import QuantizedModel
from firmware_sim.codegen.c_text import c_array
from firmware_sim.codegen.fused_int8_step import weight_arrays
from firmware_sim.codegen.harness import DEFAULT_NAME, encode_stream, write_sources
from firmware_sim.codegen.kernel_library import kernel_sources
from firmware_sim.codegen.model_facts import macs_per_step
from firmware_sim.device.build import build
from firmware_sim.device.execute import RunResult, run
from firmware_sim.device.targets import get_target

PATHS = ("optimized", "portable")
PORTABLE_DEFINES: dict[str, object] = {"EDGEGRU_PORTABLE": None}
DEFAULT_TARGETS = ("cortex-m4", "cortex-m55")
MATVEC_SHAPES = ((64, 64), (192, 64))
MATVEC_SCHEMES = ("int8", "int16x8")


# --- whole step ----------------------------------------------------------------------------------


def random_steps(model: QuantizedModel, steps: int, seed: int = 0) -> np.ndarray:
    """One sequence of `steps` random quantized inputs [1, steps, F] over the activation type's full range."""
    dtype = np.dtype(model.tensors["x"].dtype)
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    shape = (1, steps, model.config["input_size"])
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def bench_step(model: QuantizedModel, target: str, steps: int, work_dir: Path, timeout_s: float = 600) -> dict:
    """Whole-step instruction counts of the optimized and portable builds on one emulated target."""
    target_ = get_target(target)
    if not target_.emulated:
        raise EdgeGRUError(f"instruction counts need an emulated target, not {target_.name}")
    if steps < 1:
        raise EdgeGRUError("steps must be at least 1")
    x_q = random_steps(model, steps)
    stdin = encode_stream(x_q, np.array([steps]))
    macs = macs_per_step(model)
    row: dict = {"target": target_.name, "benchmark": "step", "scheme": model.scheme,
                 "shape": f"hidden={model.config['hidden']}", "macs": macs, "windows": steps}
    outputs = {}
    for path in PATHS:
        out_dir = Path(work_dir) / target_.name / "step" / path
        sources = write_sources(model, out_dir, DEFAULT_NAME)
        defines = {"EDGEGRU_MARKERS": None, **(PORTABLE_DEFINES if path == "portable" else {})}
        exe = build(target_, sources, include_dirs=[out_dir], out_dir=out_dir, defines=defines, name=DEFAULT_NAME)
        result = _checked_run(target_.name, exe, stdin, timeout_s, f"step ({path})")
        counts = np.array(result.instruction_counts, dtype=np.int64)
        if len(counts) != steps:
            raise EdgeGRUError(f"{target_.name} step ({path}): {len(counts)} instruction counts for {steps} steps")
        outputs[path] = result.stdout
        _fill(row, path, float(np.median(counts)), macs)
    if outputs["optimized"] != outputs["portable"]:
        raise EdgeGRUError(f"{target_.name}: the optimized and portable builds computed different outputs")
    row["ratio"] = _ratio(row)
    return row


# --- mat-vec alone -------------------------------------------------------------------------------


def matvec_data(shapes: Sequence[tuple[int, int]] = MATVEC_SHAPES, seed: int = 1
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Weights [max_rows * max_cols] int8 in [-127, 127] and one input vector per scheme of
    `MATVEC_SCHEMES` (its activation type's full range)."""
    rows = max(r for r, _ in shapes)
    cols = max(c for _, c in shapes)
    rng = np.random.default_rng(seed)
    weights = rng.integers(-127, 127, size=rows * cols, endpoint=True).astype(np.int8)
    inputs = {}
    for scheme in MATVEC_SCHEMES:
        info = np.iinfo(get_scheme(scheme).activation)
        inputs[scheme] = rng.integers(info.min, info.max, size=cols, endpoint=True).astype(info.dtype)
    return weights, inputs


def matvec_source(cases: Sequence[tuple[str, int, int]], repeats: int,
                  weights: np.ndarray, inputs: dict[str, np.ndarray]) -> str:
    """C benchmark: `repeats` empty windows, then for each (scheme, rows, cols) case `repeats` windows of
    one mat-vec acc = W x over the first rows * cols weights, then the accumulators of the last repeat
    written to stdout (int32, native order).  int8: the step's kernel `edgegru_matvec_int8`, the weights
    in the path's layout (`fused_int8_step.weight_arrays`); int16x8: `edgegru_dot_int16x8`
    per row, as the generic step calls it."""
    max_rows = max(r for _, r, _ in cases)
    max_cols = max(c for _, _, c in cases)
    parts = [
        "/* EdgeGRU mat-vec benchmark, written by firmware_sim/bench.py. */\n",
        "#include <stdint.h>\n#include <stdio.h>\n\n#include \"edgegru_gru_int8.h\"\n#include \"edgegru_kernels.h\"\n"
        "#include \"edgegru_rt.h\"\n#include \"edgegru_target.h\"\n\n",
        f"#define REPEATS {repeats}\n\n",
        f"static int32_t acc[{max_rows}];\n\n",
    ]
    activation = {scheme: get_scheme(scheme).activation for scheme, _, _ in cases}  # "int8" or "int16"
    by_type = {dtype: sorted(s for s in activation if activation[s] == dtype) for dtype in ("int8", "int16")}
    if by_type["int8"]:
        parts.append("".join(c_array("int8_t", f"x_{scheme}", inputs[scheme]) for scheme in by_type["int8"])
                     + f"static int32_t zero_bias[{max_rows}];\nstatic int32_t wide[{(max_cols + 1) // 2}];\n")
        for _, rows, cols in sorted({c for c in cases if activation[c[0]] == "int8"}):
            parts.append(weight_arrays(f"packed_{rows}x{cols}", weights[: rows * cols].reshape(rows, cols)))
    if by_type["int16"]:
        parts.append(
            c_array("int8_t", "weights", weights)
            + "".join(c_array("int16_t", f"x_{scheme}", inputs[scheme]) for scheme in by_type["int16"])
            + "static void matvec_int16x8(const int16_t *x, int32_t rows, int32_t cols)\n{\n"
            "    int32_t r;\n"
            "    for (r = 0; r < rows; ++r) {\n"
            "        acc[r] = edgegru_dot_int16x8(0, x, weights + r * cols, cols);\n"
            "    }\n}\n\n")
    parts.append("int main(void)\n{\n    int k;\n"
                 "    for (k = 0; k < REPEATS; ++k) {\n"
                 "        edgegru_mark_begin();\n        edgegru_mark_end();\n    }\n")
    for scheme, rows, cols in cases:
        call = (f"edgegru_matvec_int8(packed_{rows}x{cols}, zero_bias, x_{scheme}, acc, {rows}, {cols}, wide)"
                if activation[scheme] == "int8" else f"matvec_int16x8(x_{scheme}, {rows}, {cols})")
        parts.append(
            f"    for (k = 0; k < REPEATS; ++k) {{\n"
            f"        edgegru_mark_begin();\n"
            f"        {call};\n"
            f"        edgegru_mark_end();\n    }}\n"
            f"    fwrite(acc, sizeof acc[0], {rows}, stdout);\n"
        )
    parts.append("    return fflush(stdout) == 0 ? 0 : 1;\n}\n")
    return "".join(parts)


def bench_matvec(target: str, work_dir: Path, shapes: Sequence[tuple[int, int]] = MATVEC_SHAPES,
                 schemes: Sequence[str] = MATVEC_SCHEMES, repeats: int = 5, timeout_s: float = 600,
                 paths: Sequence[str] = PATHS) -> list[dict]:
    """Steady-state mat-vec instruction counts, one row per (scheme, shape), for each of `paths`
    (optimized, portable; the ratio only when both ran)."""
    target_ = get_target(target)
    if not target_.emulated:
        raise EdgeGRUError(f"instruction counts need an emulated target, not {target_.name}")
    if repeats < 1:
        raise EdgeGRUError("repeats must be at least 1")
    cases = [(scheme, rows, cols) for scheme in schemes for rows, cols in shapes]
    weights, inputs = matvec_data(shapes)
    expected = b"".join(
        (weights[: rows * cols].reshape(rows, cols).astype(np.int64) @ inputs[scheme].astype(np.int64))
        .astype("<i4").tobytes()
        for scheme, rows, cols in cases
    )
    rows_out = [{"target": target_.name, "benchmark": "matvec", "scheme": scheme, "shape": f"{rows}x{cols}",
                 "macs": rows * cols, "windows": repeats} for scheme, rows, cols in cases]
    for path in paths:
        out_dir = Path(work_dir) / target_.name / "matvec" / path
        out_dir.mkdir(parents=True, exist_ok=True)
        for filename, text in kernel_sources().items():
            (out_dir / filename).write_text(text)
        (out_dir / "matvec_bench.c").write_text(matvec_source(cases, repeats, weights, inputs))
        sources = [out_dir / "matvec_bench.c", out_dir / "edgegru_kernels.c"]
        exe = build(target_, sources, include_dirs=[out_dir], out_dir=out_dir,
                    defines=PORTABLE_DEFINES if path == "portable" else None, name="matvec_bench")
        result = _checked_run(target_.name, exe, b"", timeout_s, f"mat-vec ({path})")
        if result.stdout != expected:
            raise EdgeGRUError(f"{target_.name} mat-vec ({path}): the accumulators differ from numpy")
        counts = np.array(result.instruction_counts, dtype=np.int64)
        if len(counts) != repeats * (len(cases) + 1):
            raise EdgeGRUError(f"{target_.name} mat-vec ({path}): {len(counts)} instruction counts, "
                               f"expected {repeats * (len(cases) + 1)}")
        windows = counts.reshape(len(cases) + 1, repeats)
        overhead = float(np.median(windows[0]))
        for row, case_counts in zip(rows_out, windows[1:]):
            row[f"{path}_window_overhead"] = overhead
            _fill(row, path, float(np.median(case_counts)) - overhead, row["macs"])
    for row in rows_out:
        row["ratio"] = _ratio(row) if len(paths) == len(PATHS) else None
    return rows_out


# --- both, and the table -------------------------------------------------------------------------


def bench_firmware(model: QuantizedModel | None, targets: Sequence[str] = DEFAULT_TARGETS, steps: int = 20, *,
                   matvec: bool = True, repeats: int = 5, work_dir: str | Path | None = None) -> list[dict]:
    """Optimized vs portable kernels on every target: the whole step of `model` (skipped if None) and the
    mat-vec alone (int8 and int16x8; 64x64 and 192x64).

    Each row: target, benchmark ("step" | "matvec"), scheme, shape, macs, windows (counted windows),
    and per path p in ("optimized", "portable"): p_instructions (median per window; mat-vec: minus the
    empty-window overhead) and p_instructions_per_mac; ratio = portable / optimized instructions.
    `work_dir` keeps the sources and ELFs (a temporary directory otherwise).
    """
    for name in targets:
        if not get_target(name).emulated:  # refuse before any work
            raise EdgeGRUError(f"instruction counts need an emulated target, not {name}")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="edgegru-bench-") as scratch:
        root = Path(work_dir) if work_dir is not None else Path(scratch)
        for name in targets:
            if model is not None:
                rows.append(bench_step(model, name, steps, root))
            if matvec:
                rows.extend(bench_matvec(name, root, repeats=repeats))
    return rows


def format_bench(rows: Sequence[dict]) -> str:
    """A plain-text table: instructions and instructions/MAC of the optimized and portable paths, and
    portable / optimized."""
    header = ("target", "bench", "scheme", "shape", "MACs", "opt instr", "opt instr/MAC",
              "port instr", "port instr/MAC", "port/opt")
    lines = [header]
    for row in rows:
        lines.append((
            row["target"], row["benchmark"], row["scheme"], row["shape"], str(row["macs"]),
            f"{row['optimized_instructions']:.0f}", f"{row['optimized_instructions_per_mac']:.3f}",
            f"{row['portable_instructions']:.0f}", f"{row['portable_instructions_per_mac']:.3f}",
            f"{row['ratio']:.2f}x",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    numeric = set(range(4, len(header)))

    def render(line: Sequence[str]) -> str:
        return "  ".join(cell.rjust(w) if i in numeric else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(line, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(lines[0]), rule, *(render(line) for line in lines[1:])])


# --- helpers -------------------------------------------------------------------------------------


def _checked_run(target: str, exe: Path, stdin: bytes, timeout_s: float, what: str) -> RunResult:
    result = run(target, exe, stdin, timeout_s=timeout_s, count_instructions=True)
    if result.fault_kind:
        raise EdgeGRUError(f"{target} {what}: the program stopped with a {result.fault_kind}")
    if result.exit_code != 0:
        raise EdgeGRUError(f"{target} {what}: the program exited with {result.exit_code}: "
                           f"{result.stderr.decode(errors='replace')[-300:]}")
    return result


def _fill(row: dict, path: str, instructions: float, macs: int) -> None:
    row[f"{path}_instructions"] = instructions
    row[f"{path}_instructions_per_mac"] = round(instructions / macs, 3) if macs else float("nan")


def _ratio(row: dict) -> float:
    optimized = row["optimized_instructions"]
    return round(row["portable_instructions"] / optimized, 3) if optimized > 0 else float("nan")
