"""`edgegru bench`: the benchmarks that print figures, on a quantized run.

`firmware`: the generated C on the emulated Cortex-M cores, optimized and portable paths side by side
(whole step and mat-vec alone, exact instruction counts; `firmware_sim.bench`).  It needs the
Cortex-M toolchain; without it the benchmark is skipped with the reason, not failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from edgegru.artifact import load_artifact
from edgegru.stages.firmware_stage import available_targets
from edgegru.stages.run_layout import RunLayout
from firmware_sim.bench import bench_firmware, format_bench

BENCHMARKS = ("firmware",)


def bench_run(run_dir: Path, benchmarks: list[str], schemes: list[str], targets: list[str],
              steps: int) -> Iterator[tuple[str, str]]:
    """Yields (title, table) per benchmark and scheme, or (title, reason) for one that was skipped."""
    layout = RunLayout(Path(run_dir))
    models = {scheme: load_artifact(layout.quant_dir(scheme)) for scheme in schemes}  # refuse a missing run first
    if "firmware" in benchmarks:
        usable, skipped = available_targets(targets)
        for target, reason in skipped.items():
            yield f"firmware on {target}: skipped", reason
        for scheme, model in models.items():
            if usable:
                yield (f"firmware, {scheme}: optimized vs portable C (instructions, exact)",
                       format_bench(bench_firmware(model, tuple(usable), steps=steps)))
