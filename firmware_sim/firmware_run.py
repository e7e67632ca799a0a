"""`edgegru firmware`: generate, build and run the C model on each target, and measure it.

For every target the generated sources, the executable and `firmware.json` land in
`runs/NAME/firmware/<scheme>/<target>/`.  Every test sequence is streamed through the program (reset
before each sequence) and every element of every step is compared with the golden model (`double`
rounding, the TFLite Micro arithmetic).  On emulated cores a QEMU plugin counts the instructions of
each `<name>_step` call exactly, and of the mat-vec kernel alone (`recurrent_matvec`).  Cycle model for the time per step: one instruction per cycle (an
optimistic bound for Cortex-M4/M33 at zero wait states; the M55 can retire more), stated in the JSON.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgegru.atomic import write_json_atomic
from edgegru.errors import EdgeGRUError
from edgegru.quantize import QuantizedModel
from firmware_sim.build import build
from firmware_sim.bench import bench_matvec
from firmware_sim.c_model import macs_per_step, state_bytes
from firmware_sim.host import DEFAULT_NAME, decode_stream, encode_stream, write_sources
from firmware_sim.run import run
from firmware_sim.sizes import sizes, symbol_sizes
from firmware_sim.targets import get_target

DEFAULT_CLOCK_MHZ = 100.0


def model_memory(model: QuantizedModel, elf: Path, name: str = DEFAULT_NAME) -> dict:
    """The generated model's own bytes, read from the ELF's symbols: parameters (every `_weights` and
    `_bias` array) against the artifact's integer tensor bytes, the other constants (requantization
    parameters and tables), the static scratch of the step, and the caller's state (arithmetic)."""
    objects = {symbol: size for symbol, size in symbol_sizes(elf).items() if symbol.startswith(name + "_")}
    parameters = sum(size for symbol, size in objects.items() if symbol.endswith(("_weights", "_bias")))
    scratch = objects.get(f"{name}_scratch", 0)
    tensor_bytes = model.weight_bytes()
    return {
        "parameter_flash_bytes": parameters,
        "parameter_tensor_bytes": tensor_bytes,
        "parameter_flash_ratio": round(parameters / tensor_bytes, 4),
        "constant_flash_bytes": sum(objects.values()) - parameters - scratch,
        "scratch_bytes": scratch,
        "state_bytes": state_bytes(model),
    }


def recurrent_matvec(model: QuantizedModel, target: str, work_dir: Path) -> dict:
    """The step's mat-vec kernel alone, steady state, on the shape of the recurrent gates' stacked
    weights [3 hidden, hidden] (`bench.bench_matvec`, optimized path only)."""
    hidden = model.config["hidden"]
    return bench_matvec(target, work_dir, shapes=((3 * hidden, hidden),), schemes=(model.scheme,), repeats=3,
                        paths=("optimized",))[0]


def run_target(model: QuantizedModel, target_name: str, x_q: np.ndarray, lengths: np.ndarray, out_dir: Path,
               timeout_s: float = 1800) -> tuple[np.ndarray, list[np.ndarray], dict]:
    """Build and run on one target; returns (logits [N,T,C], states, measurements)."""
    target = get_target(target_name)
    sources = write_sources(model, out_dir, DEFAULT_NAME)
    exe = build(target, sources, include_dirs=[out_dir], out_dir=out_dir, defines={"EDGEGRU_MARKERS": None},
                name=DEFAULT_NAME)
    result = run(target, exe, encode_stream(x_q, lengths), timeout_s=timeout_s, count_instructions=target.emulated)
    if result.fault_kind:
        raise EdgeGRUError(f"{target.name}: the program stopped with a {result.fault_kind}")
    if result.exit_code != 0:
        raise EdgeGRUError(f"{target.name}: the program exited with {result.exit_code}: {result.text[-300:]}")
    logits, states = decode_stream(model, result.stdout, x_q.shape[1], lengths)
    measured = {"target": target.name}
    if target.emulated:
        counts = np.array(result.instruction_counts, dtype=np.int64)
        if len(counts) != int(lengths.sum()):
            raise EdgeGRUError(f"{target.name}: {len(counts)} instruction counts for {int(lengths.sum())} steps")
        section = sizes(exe)
        macs = macs_per_step(model)
        memory = model_memory(model, exe)
        measured.update({
            "flash_bytes": section["flash"],
            **memory,
            "ram_bytes": memory["state_bytes"] + memory["scratch_bytes"] + result.stack_peak_bytes,
            "ram_bytes_static": section["ram"],
            "stack_bytes": result.stack_peak_bytes,
            "instructions_per_step_median": int(np.median(counts)),
            "instructions_per_step_max": int(counts.max()),
            "macs_per_step": macs,
            "instructions_per_mac": round(float(np.median(counts)) / macs, 3),
        })
    return logits, states, measured


def firmware_run(model: QuantizedModel, split, targets: list[str], out_root: Path, clock_mhz: float = DEFAULT_CLOCK_MHZ,
                 max_sequences: int | None = None) -> list[dict]:
    """Run the C model on every target over the test split; writes one firmware.json per target."""
    from export.verify import compare_with_golden, golden_trace, verification_streams

    for name in targets:
        get_target(name)  # refuse an unknown target before any work
    x_q, lengths, y = verification_streams(model, split, max_sequences)
    trace = golden_trace(model, x_q, lengths, "double")
    reports = []
    for name in targets:
        out_dir = Path(out_root) / name
        logits, states, measured = run_target(model, name, x_q, lengths, out_dir)
        report = {**measured, "scheme": model.scheme, "variant": model.config["variant"],
                  "hidden": model.config["hidden"], "sequences": len(lengths),
                  **compare_with_golden(model, trace, logits, states, lengths, y)}
        if "instructions_per_step_median" in report:
            matvec = recurrent_matvec(model, name, out_dir / "matvec")
            report["matvec_shape"] = matvec["shape"]
            report["matvec_instructions_per_mac"] = matvec["optimized_instructions_per_mac"]
            report["clock_mhz"] = clock_mhz
            report["cycle_model"] = "1 instruction = 1 cycle (zero wait states)"
            report["microseconds_per_step"] = round(report["instructions_per_step_median"] / clock_mhz, 2)
        write_json_atomic(out_dir / "firmware.json", report)
        reports.append(report)
    return reports
