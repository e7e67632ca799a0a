"""Accuracy versus size across datasets, model sizes, GRU variants and quantization schemes.

For every combination a run is trained (or reused when its `train.json` matches), quantized in both
schemes, and summarized: float, int8, int16x8 and torch.ao dynamic-int8 test accuracy, parameter
bytes per scheme, training time.  Written as `report.json`, a Markdown table `report.md` and a plot
`accuracy_vs_size.png` (test accuracy against parameter bytes, one line per dataset and scheme).
"""

from __future__ import annotations

from itertools import product
from pathlib import Path

from edgegru.atomic import write_atomic, write_bytes_atomic, write_json_atomic
from edgegru.data import load_dataset
from edgegru.tensor_quant import SCHEMES
from edgegru.stages.quantize_stage import quantize_run
from edgegru.stages.train_stage import train_run
from edgegru.train import TrainConfig


def run_name(dataset: str, hidden: int, variant: str, layers: int) -> str:
    return f"{Path(dataset).stem}-h{hidden}-l{layers}-{variant}"


def report_row(root: Path, dataset_name: str, config: TrainConfig, progress: bool) -> dict:
    run_dir = root / run_name(dataset_name, config.hidden, config.variant, config.layers)
    metrics = train_run(load_dataset(dataset_name), config, run_dir, progress)
    row = {"dataset": metrics["dataset"], "hidden": config.hidden, "layers": config.layers, "variant": config.variant,
           "params": metrics["params"], "float_bytes": 4 * metrics["params"], "float_accuracy": metrics["test_accuracy"],
           "train_seconds": metrics["train_seconds"]}
    for scheme in SCHEMES:
        quant = quantize_run(run_dir, scheme)
        row[f"{scheme}_accuracy"] = quant["quant_accuracy"]
        row[f"{scheme}_bytes"] = quant["weight_bytes"]
        row[f"{scheme}_drop_pp"] = quant["accuracy_drop_pp"]
        row["dynamic_int8_accuracy"] = quant["dynamic_int8_accuracy"]
    return row


def markdown_table(rows: list[dict]) -> str:
    header = ("| dataset | H | layers | variant | float acc | int8 acc (drop pp) | int16x8 acc (drop pp) | "
              "torch.ao dynamic int8 | float bytes | int8 bytes | train s |")
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for r in rows:
        dynamic = "n/a" if r["dynamic_int8_accuracy"] is None else f"{r['dynamic_int8_accuracy']:.4f}"
        lines.append(f"| {r['dataset']} | {r['hidden']} | {r['layers']} | {r['variant']} | {r['float_accuracy']:.4f} | "
                     f"{r['int8_accuracy']:.4f} ({r['int8_drop_pp']:+.2f}) | {r['int16x8_accuracy']:.4f} "
                     f"({r['int16x8_drop_pp']:+.2f}) | {dynamic} | {r['float_bytes']:,} | {r['int8_bytes']:,} | "
                     f"{r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for dataset in sorted({r["dataset"] for r in rows}):
        for scheme, marker in (("float", "o"), ("int8", "s"), ("int16x8", "^")):
            points = sorted((r[f"{scheme}_bytes"], r[f"{scheme}_accuracy"]) for r in rows
                            if r["dataset"] == dataset and r["variant"] == rows[0]["variant"])
            if points:
                axis.plot(*zip(*points), marker=marker, label=f"{dataset} {scheme}")
    axis.set_xscale("log")
    axis.set_xlabel("parameter bytes")
    axis.set_ylabel("test accuracy")
    axis.set_title(f"Accuracy vs size ({rows[0]['variant']})")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    write_atomic(path, lambda temp: figure.savefig(temp, format="png", dpi=120))
    plt.close(figure)


def build_report(root: Path, datasets: list[str], hiddens: list[int], variants: list[str], layers: int = 1,
                 steps: int | None = None, progress: bool = True) -> list[dict]:
    root = Path(root)
    rows = [report_row(root, dataset, TrainConfig(hidden=h, layers=layers, variant=v, steps=steps), progress)
            for dataset, h, v in product(datasets, hiddens, variants)]
    write_json_atomic(root / "report.json", rows)
    write_bytes_atomic(root / "report.md", markdown_table(rows).encode())
    plot(rows, root / "accuracy_vs_size.png")
    return rows
