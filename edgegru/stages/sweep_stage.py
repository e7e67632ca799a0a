"""`edgegru sweep`: a grid of models, each trained, quantized, exported and verified, on Ray; resumable.

    SWEEP_DIR/sweep.json                               the grid and the training config of the last call
    SWEEP_DIR/runs/<dataset>-h<H>-l<L>-<variant>-seed<S>/   one run directory per trained model (RunLayout)
    SWEEP_DIR/runs/<run>/cells/<scheme>.json           a cell's done marker, written last, atomically
    SWEEP_DIR/cells.csv                                one row per finished cell, from the cells' own files

A cell is one (dataset, hidden, layers, variant, scheme, seed).  Its stages are the commands' own:
`train_run` (once per run, shared by its schemes), then per scheme `quantize_run`, `export_run`
(TFLite and ONNX), `verify_run` and, with firmware targets, `firmware_run`.  A cell is finished when
its marker names the same cell, training config, backends and targets, and every file it lists still
has the digest it had when the cell finished; a finished cell is never run again.  An interrupted
cell has no marker: the next call runs it, and its stages reuse whatever finished before.

Ray runs one task per model (training) and one per cell, the cells of a run one after another (they
share the run's float exports); each task takes `threads` CPUs and pins torch and OpenMP to them.
A task whose worker dies is retried (`MAX_RETRIES`); a cell that still fails is left without a marker,
so it is never recorded as a result, and is named in the error the call ends with.  On a cluster
(`address`) every node must see SWEEP_DIR and have edgegru installed.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import os
import socket
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from edgegru.atomic import write_bytes_atomic, write_json_atomic
from edgegru.data import DATASETS
from edgegru.errors import EdgeGRUError
from edgegru.model import VARIANTS
from edgegru.stages.export_stage import FORMATS, export_run
from edgegru.stages.firmware_stage import TARGET_NAMES, available_targets, firmware_run
from edgegru.stages.quantize_stage import quantize_run
from edgegru.stages.run_layout import RunLayout, file_digest, read_json
from edgegru.stages.train_stage import train_run
from edgegru.stages.verify_stage import verify_run
from edgegru.tensor_quant import SCHEMES
from edgegru.train import TrainConfig
from export.verify import BACKENDS

# Backends that run without the Cortex-M toolchain or QEMU (each verify record says whether it must be bit-exact).
DEFAULT_BACKENDS = ("tflm", "tflite-runtime", "litert-ref", "litert", "onnxruntime")
LAYERS = (1, 2)
LOCK_FILE = ".sweep.lock"  # held (flock) while a sweep runs on the directory
MAX_RETRIES = 2  # a cell's worker may die this many times before the cell counts as failed
CELL_KEYS = ("dataset", "hidden", "layers", "variant", "scheme", "seed")
# cells.csv column (after "<target>_") <- firmware.json key
FIRMWARE_KEYS = {"flash_bytes": "flash_bytes", "ram_bytes": "ram_bytes",
                 "instructions_per_step": "instructions_per_step_median", "clock_mhz": "clock_mhz",
                 "us_per_step": "microseconds_per_step", "firmware_mismatches": "mismatches"}


@dataclass(frozen=True)
class Grid:
    datasets: tuple[str, ...]
    hidden: tuple[int, ...]
    layers: tuple[int, ...]
    variants: tuple[str, ...]
    schemes: tuple[str, ...]
    seeds: int
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    firmware: tuple[str, ...] = ()
    max_sequences: int | None = None  # verify and run firmware on the first N test sequences (None: all)


def _bad(what: str, values, allowed: str):
    if values:
        raise EdgeGRUError(f"invalid grid: {what} {', '.join(map(str, values))}; {allowed}")


def validate_grid(grid: Grid) -> Grid:
    """Refuse an empty axis or a value no stage accepts, in one line, before any work."""
    for name in ("datasets", "hidden", "layers", "variants", "schemes", "backends"):
        if not getattr(grid, name):
            raise EdgeGRUError(f"invalid grid: no {name} given")
    _bad("dataset", [d for d in grid.datasets if d not in DATASETS and not (d.endswith(".npz") and Path(d).is_file())],
         f"choose from {', '.join(DATASETS)} or an existing .npz file")
    _bad("hidden", [h for h in grid.hidden if not isinstance(h, int) or h < 1], "hidden sizes are integers >= 1")
    _bad("layers", [n for n in grid.layers if n not in LAYERS], f"choose from {', '.join(map(str, LAYERS))}")
    _bad("variant", [v for v in grid.variants if v not in VARIANTS], f"choose from {', '.join(VARIANTS)}")
    _bad("scheme", [s for s in grid.schemes if s not in SCHEMES], f"choose from {', '.join(SCHEMES)}")
    _bad("backend", [b for b in grid.backends if b not in BACKENDS], f"choose from {', '.join(BACKENDS)}")
    _bad("firmware target", [t for t in grid.firmware if t not in TARGET_NAMES], f"choose from {', '.join(TARGET_NAMES)}")
    if grid.max_sequences is not None and grid.max_sequences < 1:
        raise EdgeGRUError(f"invalid grid: --max-sequences {grid.max_sequences}; an integer >= 1")
    if not isinstance(grid.seeds, int) or grid.seeds < 1:
        raise EdgeGRUError(f"invalid grid: --seeds {grid.seeds}; the number of seeds is an integer >= 1")
    _, missing = available_targets(list(grid.firmware))
    if missing:
        raise EdgeGRUError(f"firmware target(s) {', '.join(missing)} cannot run here: {'; '.join(sorted(set(missing.values())))}")
    for axis in ("datasets", "hidden", "layers", "variants", "schemes", "backends", "firmware"):
        values = getattr(grid, axis)
        if len(set(values)) != len(values):
            raise EdgeGRUError(f"invalid grid: {axis} {', '.join(map(str, values))} repeats a value")
    return grid


def run_name(dataset: str, hidden: int, layers: int, variant: str, seed: int) -> str:
    return f"{Path(dataset).stem}-h{hidden}-l{layers}-{variant}-seed{seed}"


def grid_runs(grid: Grid, base: TrainConfig) -> list[tuple[str, TrainConfig]]:
    """(dataset, training config) per model of the grid, in grid order; seeds base.seed, base.seed + 1, ..."""
    return [(dataset, replace(base, hidden=h, layers=n, variant=v, seed=base.seed + k))
            for dataset in grid.datasets for h in grid.hidden for n in grid.layers for v in grid.variants
            for k in range(grid.seeds)]


def run_dir(sweep_dir: Path, dataset: str, config: TrainConfig) -> Path:
    return Path(sweep_dir) / "runs" / run_name(dataset, config.hidden, config.layers, config.variant, config.seed)


def marker_path(run: Path, scheme: str) -> Path:
    return Path(run) / "cells" / f"{scheme}.json"


def cell_files(run: Path, scheme: str, firmware: tuple[str, ...]) -> list[Path]:
    """The files a cell's results are read from: what its marker fixes by digest."""
    layout = RunLayout(Path(run))
    return ([layout.train_json, layout.quant_json(scheme), layout.export_manifest(scheme), layout.verify_json(scheme)]
            + [layout.firmware_dir(scheme) / target / "firmware.json" for target in firmware])


def _marker_identity(dataset: str, config: TrainConfig, scheme: str, grid: Grid) -> dict:
    return {"cell": {"dataset": dataset, "hidden": config.hidden, "layers": config.layers, "variant": config.variant,
                     "scheme": scheme, "seed": config.seed},
            "train_config": asdict(config), "backends": list(grid.backends), "firmware": list(grid.firmware),
            "max_sequences": grid.max_sequences}


def finished_cell(sweep_dir: Path, dataset: str, config: TrainConfig, scheme: str, grid: Grid) -> dict | None:
    """The cell's marker when the cell is finished (same identity, files unchanged), else None."""
    run = run_dir(sweep_dir, dataset, config)
    marker = read_json(marker_path(run, scheme))
    if marker is None or any(marker.get(k) != v for k, v in _marker_identity(dataset, config, scheme, grid).items()):
        return None
    files = marker.get("files", {})
    for path in cell_files(run, scheme, grid.firmware):
        relative = str(path.relative_to(run))
        if relative not in files or not path.is_file() or file_digest(path) != files[relative]:
            return None
    return marker


def pin_threads(threads: int) -> None:
    """One task, `threads` CPUs: torch and OpenMP use no more (tiny ops on spinning threads otherwise
    oversubscribe a shared machine)."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def train_model(dataset: str, config: TrainConfig, run: str, threads: int) -> str:
    """A Ray task: train (or reuse) the run's float model."""
    pin_threads(threads)
    train_run(dataset, config, Path(run), progress=False)
    return run


def run_cell(dataset: str, config: TrainConfig, scheme: str, run: str, grid: Grid, threads: int, _after=None) -> dict:
    """A Ray task: quantize, export, verify (and run firmware) for one scheme of a trained run, then write
    the cell's marker.  `_after` is the task this one waits for (training, or the run's previous cell)."""
    pin_threads(threads)
    run = Path(run)
    quantize_run(run, scheme)
    for fmt in FORMATS:
        export_run(run, scheme, fmt)
    verify_run(run, scheme, list(grid.backends), grid.max_sequences, progress=False, reuse=True)
    if grid.firmware:
        firmware_run(run, scheme, list(grid.firmware), max_sequences=grid.max_sequences, reuse=True)
    files = {str(path.relative_to(run)): file_digest(path) for path in cell_files(run, scheme, grid.firmware)}
    marker = {**_marker_identity(dataset, config, scheme, grid), "files": files}
    write_json_atomic(marker_path(run, scheme), marker)
    return marker["cell"]


def cell_row(run: Path, scheme: str, firmware: tuple[str, ...]) -> dict:
    """One row of cells.csv, read from the cell's own files (quant.json, verify/<scheme>.json,
    firmware.json): nothing is recomputed."""
    layout = RunLayout(run)
    trained, quant = read_json(layout.train_json), read_json(layout.quant_json(scheme))
    verified = read_json(layout.verify_json(scheme))["backends"]
    exact = [r for r in verified.values() if r["exact_required"]]
    tflite = (read_json(layout.export_manifest(scheme)) or {}).get("tflite", {}).get("figures", {})
    row = {"dataset": quant["dataset"], "hidden": quant["hidden"], "layers": quant["layers"], "variant": quant["variant"],
           "scheme": scheme, "seed": trained["seed"], "params": trained["params"],
           "float_accuracy": quant["float_accuracy"], "accuracy": quant["quant_accuracy"],
           "dynamic_int8_accuracy": quant["dynamic_int8_accuracy"], "model_bytes": quant["weight_bytes"],
           "float_bytes": quant["float_weight_bytes"], "tflite_bytes": tflite.get("tflite_bytes"),
           "mismatches": sum(r["mismatches"] for r in exact),
           "max_lsb": max((r["max_abs_lsb"] for r in exact), default=0),
           "bit_exact": all(r["bit_exact"] for r in exact),
           "run_dir": str(Path("runs") / run.name)}
    for target in firmware:
        record = read_json(layout.firmware_dir(scheme) / target / "firmware.json")
        row.update({f"{target}_{column}": record.get(key) for column, key in FIRMWARE_KEYS.items()})
    return row


def finished_rows(sweep_dir: Path) -> list[dict]:
    """Every finished cell of the sweep recorded in sweep.json, in grid order."""
    grid, base = read_sweep(sweep_dir)
    rows = []
    for dataset, config in grid_runs(grid, base):
        for scheme in grid.schemes:
            if finished_cell(sweep_dir, dataset, config, scheme, grid) is not None:
                rows.append(cell_row(run_dir(sweep_dir, dataset, config), scheme, grid.firmware))
    return rows


def read_sweep(sweep_dir: Path) -> tuple[Grid, TrainConfig]:
    """The grid and training config a sweep directory was made with (its sweep.json)."""
    recorded = read_json(Path(sweep_dir) / "sweep.json")
    if recorded is None:
        raise EdgeGRUError(f"{sweep_dir} is not a sweep directory (no sweep.json); run `edgegru sweep --out {sweep_dir}` first")
    grid = Grid(**{k: tuple(v) if isinstance(v, list) else v for k, v in recorded["grid"].items()})
    return grid, TrainConfig(**recorded["train_config"])


def write_cells_csv(sweep_dir: Path, rows: list[dict]) -> Path:
    columns = list(dict.fromkeys(key for row in rows for key in row)) or list(CELL_KEYS)
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_bytes_atomic(Path(sweep_dir) / "cells.csv", text.getvalue().encode())


def reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse an address with no Ray head listening at once: Ray itself waits for one indefinitely."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise EdgeGRUError(f"--address {address}: expected HOST:PORT, as `ray start --head` prints it")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise EdgeGRUError(f"--address {address}: nothing answers there ({error.strerror or error}); start a Ray head "
                           f"with `ray start --head` and pass the address it prints") from None


def _start_ray(address: str | None, cpus: int | None, threads: int):
    import ray

    package_root = str(Path(__file__).resolve().parents[2])  # the edgegru this driver imported, also for workers
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if address:
        reachable(address)
        try:
            ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False, logging_level="error")
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise EdgeGRUError(f"--address {address}: cannot join the Ray cluster ({first}); start one with "
                               f"`ray start --head` and pass the address it prints") from None
    else:
        ray.init(num_cpus=cpus or os.cpu_count(), include_dashboard=False, runtime_env={"env_vars": env},
                 log_to_driver=False, logging_level="error", object_store_memory=200 * 2**20)
    return ray


def sweep_run(sweep_dir: Path, grid: Grid, base: TrainConfig, address: str | None = None, cpus: int | None = None,
              threads: int = 1, progress: bool = True) -> dict:
    """Run every unfinished cell of `grid` on Ray; rebuild cells.csv from every finished cell.

    Returns {"cells": total, "already": finished before, "ran": finished now, "failed": {cell: error},
    "rows": cells.csv rows}.  A grid with no work left returns without starting Ray.  When a cell
    failed (after retries), the finished ones are kept and written and EdgeGRUError names the failures.
    """
    validate_grid(grid)
    if threads < 1 or (cpus is not None and cpus < threads):
        raise EdgeGRUError(f"--threads {threads} must be >= 1 and no more than --cpus {cpus}")
    base = replace(base, threads=threads)  # training uses the threads its task holds (part of the config)
    sweep_dir = Path(sweep_dir)
    with sweep_lock(sweep_dir):
        return _sweep_locked(sweep_dir, grid, base, address, cpus, threads, progress)


@contextlib.contextmanager
def sweep_lock(sweep_dir: Path):
    """One sweep at a time on a directory: a second one would run the same cells twice.  The lock is the
    kernel's (flock), so a sweep that was killed leaves no stale lock behind."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise EdgeGRUError(f"another sweep ({holder}) is running on {sweep_dir}; wait for it or stop it first") from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield


def _sweep_locked(sweep_dir: Path, grid: Grid, base: TrainConfig, address, cpus, threads, progress) -> dict:
    write_json_atomic(sweep_dir / "sweep.json", {"grid": asdict(grid), "train_config": asdict(base)})
    todo: dict[tuple[str, TrainConfig], list[str]] = {}
    runs = grid_runs(grid, base)
    for dataset, config in runs:
        missing = [s for s in grid.schemes if finished_cell(sweep_dir, dataset, config, s, grid) is None]
        if missing:
            todo[(dataset, config)] = missing
    total = len(runs) * len(grid.schemes)
    pending = sum(len(v) for v in todo.values())
    failed = {}
    if pending:
        failed = _run_on_ray(sweep_dir, todo, grid, address, cpus, threads, progress, total - pending, total)
    rows = finished_rows(sweep_dir)
    write_cells_csv(sweep_dir, rows)
    result = {"cells": total, "already": total - pending, "ran": pending - len(failed), "failed": failed, "rows": rows}
    if failed:
        first = next(iter(failed.items()))
        raise EdgeGRUError(f"{len(failed)} of {total} cells failed and were not recorded (first: {first[0]}: {first[1]}); "
                           f"the {len(rows)} finished ones are in {sweep_dir / 'cells.csv'}; run the sweep again to retry")
    return result


def _run_on_ray(sweep_dir: Path, todo: dict, grid: Grid, address, cpus, threads, progress, done: int, total: int) -> dict:
    """Per model, a training task and then its cells one after another; at most two models per free
    slot of the cluster in flight, so cells finish (and are kept) as the sweep goes rather than after
    every training.  A progress bar over cells.  Returns {cell name: error} for the cells that failed."""
    from tqdm import tqdm

    ray = _start_ray(address, cpus, threads)
    try:
        train_task = ray.remote(num_cpus=threads, max_retries=MAX_RETRIES)(train_model)
        cell_task = ray.remote(num_cpus=threads, max_retries=MAX_RETRIES)(run_cell)
        window = 2 * max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
        queue, names, last_of_run, failed = list(todo.items()), {}, set(), {}

        def submit():
            (dataset, config), schemes = queue.pop(0)
            run = str(run_dir(sweep_dir, dataset, config))
            previous = train_task.remote(dataset, config, run, threads)
            for scheme in schemes:
                previous = cell_task.remote(dataset, config, scheme, run, grid, threads, previous)
                names[previous] = f"{Path(run).name}/{scheme}"
            last_of_run.add(previous)

        for _ in range(min(window, len(queue))):
            submit()
        with tqdm(total=total, initial=done, desc=f"sweep {sweep_dir.name}", unit="cell", disable=not progress) as bar:
            while names:
                (ready,), _ = ray.wait(list(names), num_returns=1)
                try:
                    ray.get(ready)
                except Exception as error:  # noqa: BLE001 - a failed cell is reported, never recorded
                    failed[names[ready]] = str(error).strip().splitlines()[-1]
                del names[ready]
                bar.update(1)
                if ready in last_of_run and queue:
                    submit()
        return failed
    finally:
        ray.shutdown()
