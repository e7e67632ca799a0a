"""What a built C model costs on its target: flash and RAM from the ELF, instructions per step from QEMU.

Cycle model for the time per step: one instruction per cycle (an optimistic bound for Cortex-M4/M33 at
zero wait states; the M55 can retire more); the caller states it beside the figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgegru.errors import EdgeGRUError
from edgegru.quantize import QuantizedModel
from firmware_sim.bench import bench_matvec
from firmware_sim.codegen.harness import DEFAULT_NAME
from firmware_sim.codegen.model_facts import macs_per_step, state_bytes
from firmware_sim.device.execute import RunResult
from firmware_sim.device.sizes import sizes, symbol_sizes


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


def step_footprint(model: QuantizedModel, elf: Path, result: RunResult, steps: int) -> dict:
    """Flash, RAM (state + scratch + measured stack) and instructions per step of a counted run of
    `steps` steps on an emulated core."""
    counts = np.array(result.instruction_counts, dtype=np.int64)
    if len(counts) != steps:
        raise EdgeGRUError(f"{elf.name}: {len(counts)} instruction counts for {steps} steps")
    section = sizes(elf)
    macs = macs_per_step(model)
    memory = model_memory(model, elf)
    return {
        "flash_bytes": section["flash"],
        **memory,
        "ram_bytes": memory["state_bytes"] + memory["scratch_bytes"] + result.stack_peak_bytes,
        "ram_bytes_static": section["ram"],
        "stack_bytes": result.stack_peak_bytes,
        "instructions_per_step_median": int(np.median(counts)),
        "instructions_per_step_max": int(counts.max()),
        "macs_per_step": macs,
        "instructions_per_mac": round(float(np.median(counts)) / macs, 3),
    }


def recurrent_matvec(model: QuantizedModel, target: str, work_dir: Path) -> dict:
    """The step's mat-vec kernel alone, steady state, on the shape of the recurrent gates' stacked
    weights [3 hidden, hidden] (`bench.bench_matvec`, optimized path only)."""
    hidden = model.config["hidden"]
    return bench_matvec(target, work_dir, shapes=((3 * hidden, hidden),), schemes=(model.scheme,), repeats=3,
                        paths=("optimized",))[0]
