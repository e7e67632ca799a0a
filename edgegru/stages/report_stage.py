"""`edgegru report SWEEP_DIR`: what a person decides with, from the finished cells of a sweep.

Writes, each atomically:
    SWEEP_DIR/report.html        self-contained: every figure an embedded PNG, no external URL (opens offline)
    SWEEP_DIR/report.md          the same tables and recommendations, figures linked from figures/
    SWEEP_DIR/figures/*.png      the figures

Every number is read from the cells' own files (`cells.csv` rows as `sweep_stage.cell_row` reads
them from quant.json, verify/<scheme>.json and firmware.json); the report only groups them (mean and
sample spread over seeds) and picks the best per size budget.  Accuracy is test accuracy (fraction of
test sequences); model bytes are the integer weights and biases of the quantized artifact, flash is
the whole firmware image where firmware ran.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from pathlib import Path
from statistics import mean, stdev

from edgegru.atomic import write_bytes_atomic
from edgegru.errors import EdgeGRUError
from edgegru.stages.firmware_stage import DEFAULT_SAMPLE_HZ
from edgegru.stages.run_layout import RunLayout, read_json
from edgegru.stages.sweep_stage import finished_rows, read_sweep

BUDGETS_KB = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)  # size budgets a recommendation is given for, KiB
MODEL_KEYS = ("dataset", "hidden", "layers", "variant", "scheme")  # a model of the grid; its seeds are grouped
SCHEME_MARKERS = {"int8": "s", "int16x8": "^"}
RECOMMENDATIONS = "Recommendation per size budget (1 KB = 1,024 B; accuracy: mean over seeds)"


def group_seeds(rows: list[dict]) -> list[dict]:
    """One entry per model and scheme: the cells' figures, accuracy as mean and sample std over seeds."""
    groups = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in MODEL_KEYS)].append(row)
    grouped = []
    for key, cells in groups.items():
        def spread(column):
            values = [c[column] for c in cells if c[column] is not None]
            return (mean(values), stdev(values) if len(values) > 1 else 0.0) if values else (None, None)
        entry = {**dict(zip(MODEL_KEYS, key)), "seeds": len(cells), "params": cells[0]["params"],
                 "model_bytes": cells[0]["model_bytes"], "float_bytes": cells[0]["float_bytes"]}
        for column in ("accuracy", "float_accuracy", "dynamic_int8_accuracy"):
            entry[column], entry[f"{column}_std"] = spread(column)
        grouped.append(entry)
    return grouped


def pareto_front(points: list[tuple[int, float, dict]]) -> list[tuple[int, float, dict]]:
    """The (size, accuracy, entry) points no smaller-or-equal point beats in accuracy, smallest first."""
    front = []
    for point in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or point[1] > front[-1][1]:
            front.append(point)
    return front


def describe(entry: dict) -> str:
    return f"H={entry['hidden']} {entry['layers']}L {entry['variant']} {entry['scheme']}"


def budget_size(entry: dict, rows: list[dict], targets: tuple[str, ...]) -> tuple[int, str]:
    """What a budget is measured against: the largest flash image over the firmware targets, else model bytes."""
    if targets:
        cells = [r for r in rows if all(r[k] == entry[k] for k in MODEL_KEYS)]
        return max(c[f"{t}_flash_bytes"] for c in cells for t in targets), "flash"
    return entry["model_bytes"], "model bytes"


def recommendations(grouped: list[dict], rows: list[dict], targets: tuple[str, ...]) -> list[str]:
    """One line per size budget where another model fits: the most accurate (mean over seeds) that fits,
    per dataset, up to the budget every model fits in."""
    lines = []
    for dataset in sorted({e["dataset"] for e in grouped}):
        entries = [(*budget_size(e, rows, targets), e) for e in grouped if e["dataset"] == dataset]
        seen = 0
        for budget in BUDGETS_KB:
            fitting = [(size, e) for size, _, e in entries if size <= budget * 1024]
            if len(fitting) == seen:
                continue
            seen = len(fitting)
            size, best = max(fitting, key=lambda f: (f[1]["accuracy"], -f[0]))
            spread = f" ± {best['accuracy_std']:.3f} ({best['seeds']} seeds)" if best["seeds"] > 1 else ""
            lines.append(f"{dataset}, ≤ {budget} KB {entries[0][1]}: {describe(best)}, accuracy {best['accuracy']:.3f}"
                         f"{spread}, {size:,} B")
            if len(fitting) == len(entries):
                break
    return lines


def _figure(draw) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import math

    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    figure = draw(plt)
    for axis in figure.axes:  # log axes: ticks at 1, 2, 3, 5 x 10^k (fewer over a wide range), plain numbers with thousands separators
        for scale, limits in ((axis.xaxis, axis.get_xlim()), (axis.yaxis, axis.get_ylim())):
            if scale.get_scale() == "log":
                low, high = limits
                decades = math.log10(high / low)
                steps = (1, 2, 3, 5) if decades < 1.5 else (1, 2, 5) if decades < 3 else (1,)  # labels that fit
                ticks = [m * 10.0**k for k in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
                         for m in steps if low <= m * 10.0**k <= high]
                scale.set_major_locator(FixedLocator(ticks))
                scale.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
                scale.set_minor_formatter(NullFormatter())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def accuracy_vs_bytes(grouped: list[dict], dataset: str) -> bytes:
    """Integer accuracy against model bytes: a colour per layers and variant, a marker per scheme, seed
    spread as error bars, and the Pareto front over all of them."""
    entries = [e for e in grouped if e["dataset"] == dataset]
    kinds = sorted({(e["layers"], e["variant"]) for e in entries})

    def draw(plt):
        figure, axis = plt.subplots(figsize=(8, 5.2))
        for colour, (layers, variant) in enumerate(kinds):
            for scheme, marker in SCHEME_MARKERS.items():
                points = sorted((e["model_bytes"], e["accuracy"], e["accuracy_std"]) for e in entries
                                if (e["layers"], e["variant"], e["scheme"]) == (layers, variant, scheme))
                if points:
                    x, y, err = zip(*points)
                    axis.errorbar(x, y, yerr=err, fmt=marker, color=f"C{colour}", capsize=3,
                                  label=f"{layers}L {variant} {scheme}")
        front = pareto_front([(e["model_bytes"], e["accuracy"], e) for e in entries])
        axis.step([p[0] for p in front], [p[1] for p in front], where="post", color="0.3", linestyle="--",
                  label="Pareto front (most accurate at ≤ these bytes)")
        axis.plot([p[0] for p in front], [p[1] for p in front], "o", markersize=12, markerfacecolor="none", color="0.3")
        axis.set_xscale("log")
        axis.set_xlabel("model bytes (integer weights and biases, B, log scale)")
        axis.set_ylabel("test accuracy (fraction of sequences)")
        axis.set_title(f"{dataset}: integer accuracy vs model size (mean ± sample std over seeds)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
        return figure
    return _figure(draw)


def accuracy_vs_params(grouped: list[dict], dataset: str) -> bytes:
    """Float, int8, int16x8 and torch.ao dynamic int8 accuracy against parameter count, a panel per
    layers and variant."""
    entries = [e for e in grouped if e["dataset"] == dataset]
    kinds = sorted({(e["layers"], e["variant"]) for e in entries})
    lines = [("float", None, "float_accuracy", "o"), ("int8", "int8", "accuracy", SCHEME_MARKERS["int8"]),
             ("int16x8", "int16x8", "accuracy", SCHEME_MARKERS["int16x8"]),
             ("torch.ao dynamic int8", None, "dynamic_int8_accuracy", "x")]

    def draw(plt):
        columns = min(2, len(kinds))
        rows = -(-len(kinds) // columns)
        figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns + 0.6, 3.4 * rows + 1.0), sharey=True,
                                    squeeze=False)
        for panel, (layers, variant) in enumerate(kinds):
            axis = axes.flat[panel]
            same = [e for e in entries if (e["layers"], e["variant"]) == (layers, variant)]
            for colour, (label, scheme, column, marker) in enumerate(lines):
                # float and torch.ao figures belong to the model: both schemes' cells carry the same ones
                points = sorted({e["params"]: (e["params"], e[column], e[f"{column}_std"]) for e in same
                                 if scheme in (None, e["scheme"]) and e[column] is not None}.values())
                if points:
                    x, y, err = zip(*points)
                    style = {"linestyle": "--", "markerfacecolor": "none", "color": "black"} if label == "float" else {}
                    axis.errorbar(x, y, yerr=err, marker=marker, capsize=3, label=label,
                                  **({"color": f"C{colour}"} | style))
            axis.set_xscale("log")
            baseline = "" if any(e["dynamic_int8_accuracy"] is not None for e in same) else \
                "\n(no torch.ao baseline: torch's GRU is reset_after)"
            axis.set_title(f"{layers} layer{'s' if layers > 1 else ''}, {variant}{baseline}", fontsize=10)
            axis.set_xlabel("parameters (count, log scale)")
            axis.set_ylabel("test accuracy (fraction)")
            axis.grid(True, alpha=0.3)
        for axis in axes.flat[len(kinds):]:
            axis.set_visible(False)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
        figure.suptitle(f"{dataset}: accuracy vs parameters, float, integer and torch.ao dynamic int8\n"
                        "(mean ± sample std over seeds)", fontsize=11)
        figure.tight_layout(rect=(0, 0.05, 1, 1))
        return figure
    return _figure(draw)


def firmware_figure(rows: list[dict], targets: tuple[str, ...]) -> bytes:
    """Instructions per step against model bytes, per emulated core and scheme (first seed's cells)."""
    def draw(plt):
        figure, axis = plt.subplots(figsize=(7.5, 4.6))
        for target in targets:
            for scheme, marker in SCHEME_MARKERS.items():
                points = sorted({(r["model_bytes"], r[f"{target}_instructions_per_step"]) for r in rows
                                 if r["scheme"] == scheme and r[f"{target}_instructions_per_step"] is not None})
                if points:
                    axis.plot(*zip(*points), marker=marker, label=f"{target} {scheme}")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("model bytes (integer weights and biases, B, log scale)")
        axis.set_ylabel("instructions per GRU step (median, log scale)")
        axis.set_title("Emulated Cortex-M cost per step")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
        return figure
    return _figure(draw)


def _number(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def tables(sweep_dir: Path, rows: list[dict], grouped: list[dict], targets: tuple[str, ...],
           sample_hz: float) -> list[tuple[str, str, list, list]]:
    """(title, note, header, body) per table; a body cell is (text, cell id or None, column or None, exact value)."""
    models = [(f"{e['dataset']}", e["hidden"], e["layers"], e["variant"], e["scheme"], f"{e['params']:,}",
               f"{e['model_bytes']:,}", _number(e["float_accuracy"], ".4f"),
               _number(e["accuracy"], ".4f") + (f" ± {e['accuracy_std']:.4f}" if e["seeds"] > 1 else ""),
               _number(e["dynamic_int8_accuracy"], ".4f"), e["seeds"]) for e in grouped]
    result = [("Models", "test accuracy (fraction of test sequences), mean ± sample std over seeds; model B: integer "
               "weights and biases",
               ["dataset", "H", "layers", "variant", "scheme", "params", "model B", "float", "integer",
                "torch.ao dynamic int8", "seeds"], [[(str(v), None, None, None) for v in m] for m in models])]
    verified_by_row = [read_json(RunLayout(sweep_dir / r["run_dir"]).verify_json(r["scheme"]))["backends"] for r in rows]
    backends = sorted({backend for verified in verified_by_row for backend in verified})
    sequences = sorted({v["sequences"] for verified in verified_by_row for v in verified.values()})
    body = []
    for r, verified in zip(rows, verified_by_row):
        cell = f"{r['run_dir']}/{r['scheme']}"
        line = [(r["run_dir"].removeprefix("runs/"), None, None, None), (r["scheme"], None, None, None),
                (f"{r['accuracy']:.4f}", cell, "accuracy", r["accuracy"]),
                (f"{r['model_bytes']:,}", cell, "model_bytes", r["model_bytes"])]
        for backend in backends:
            v = verified.get(backend)
            text = "-" if v is None else f"{v['mismatches']:,} / {v['max_abs_lsb']}" + ("" if v["exact_required"] else " (tol.)")
            line.append((text, cell, f"{backend}_mismatches", None if v is None else v["mismatches"]))
        body.append(line)
    result.append(("Per-backend agreement with the golden model",
                   f"mismatched elements / max difference in LSB, every output of every step of "
                   f"{' or '.join(map(str, sequences))} test sequences; (tol.): the backend's own arithmetic, a "
                   "tolerance is required, not bit-exactness",
                   ["run", "scheme", "accuracy", "model B", *backends], body))
    if targets:
        body = []
        for r in rows:
            cell = f"{r['run_dir']}/{r['scheme']}"
            for t in targets:
                us = r[f"{t}_us_per_step"]
                body.append([(r["run_dir"].removeprefix("runs/"), None, None, None), (r["scheme"], None, None, None),
                             (t, None, None, None),
                             (_number(r[f"{t}_flash_bytes"], ","), cell, f"{t}_flash_bytes", r[f"{t}_flash_bytes"]),
                             (_number(r[f"{t}_ram_bytes"], ","), cell, f"{t}_ram_bytes", r[f"{t}_ram_bytes"]),
                             (_number(r[f"{t}_instructions_per_step"], ","), cell, f"{t}_instructions_per_step",
                              r[f"{t}_instructions_per_step"]),
                             (f"{us:.2f} at {r[f'{t}_clock_mhz']:g} MHz", cell, f"{t}_us_per_step", us),
                             (f"{100 * us * sample_hz / 1e6:.3f}%", None, None, None),
                             (_number(r[f"{t}_firmware_mismatches"], ","), None, None, None)])
        result.append(("Firmware on emulated cores",
                       "flash and RAM in bytes; instructions per step exact (QEMU), median; µs per step at the recorded "
                       f"clock, 1 instruction per cycle; duty cycle: µs per step x {sample_hz:g} steps per second",
                       ["run", "scheme", "core", "flash B", "RAM B", "instr/step", "µs/step",
                        f"duty cycle at {sample_hz:g} Hz", "mismatches"], body))
    return result


def markdown(title: str, lines: list[str], figures: dict[str, bytes], table_list) -> str:
    out = [f"# {title}", "", f"## {RECOMMENDATIONS}", ""] + [f"- {line}" for line in lines] + [""]
    out += [f"![{name}](figures/{name}.png)\n" for name in figures]
    for caption, note, header, body in table_list:
        out += [f"## {caption}", "", f"{note}.", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cell[0] for cell in line) + " |" for line in body]
        out.append("")
    return "\n".join(out)


def html_page(title: str, lines: list[str], figures: dict[str, bytes], table_list) -> str:
    esc = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
             "font-size:13px;margin-bottom:2em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
             "td:first-child{text-align:left}"
             "img{max-width:100%}</style></head><body>", f"<h1>{esc(title)}</h1>",
             f"<h2>{esc(RECOMMENDATIONS)}</h2><ul>"] + [f"<li>{esc(line)}</li>" for line in lines] + ["</ul>"]
    for name, png in figures.items():
        parts.append(f"<figure><img id='{esc(name)}' alt='{esc(name)}' "
                     f"src='data:image/png;base64,{base64.b64encode(png).decode()}'></figure>")
    for caption, note, header, body in table_list:
        parts.append(f"<h2>{esc(caption)}</h2><p>{esc(note)}.</p><table><tr>"
                     + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        for line in body:
            parts.append("<tr>" + "".join(
                f"<td data-cell='{esc(cell)}' data-column='{esc(column)}' data-value='{esc(repr(value))}'>{esc(text)}</td>"
                if cell else f"<td>{esc(text)}</td>" for text, cell, column, value in line) + "</tr>")
        parts.append("</table>")
    return "\n".join(parts + ["</body></html>\n"])


def report_run(sweep_dir: Path, sample_hz: float = DEFAULT_SAMPLE_HZ) -> dict:
    """Write report.html, report.md and figures/ for a sweep; `sample_hz` (steps per second on the device)
    turns µs per step into a duty cycle.  Returns {paths..., "recommendations": lines}."""
    sweep_dir = Path(sweep_dir)
    grid, _ = read_sweep(sweep_dir)
    rows = finished_rows(sweep_dir)
    if not rows:
        raise EdgeGRUError(f"{sweep_dir} has no finished cell yet; run `edgegru sweep --out {sweep_dir}` first")
    grouped = group_seeds(rows)
    figures = {}
    for dataset in sorted({r["dataset"] for r in rows}):
        figures[f"{dataset}-accuracy-vs-bytes"] = accuracy_vs_bytes(grouped, dataset)
        figures[f"{dataset}-accuracy-vs-params"] = accuracy_vs_params(grouped, dataset)
    if grid.firmware:
        figures["firmware-instructions"] = firmware_figure(rows, grid.firmware)
    lines = recommendations(grouped, rows, grid.firmware)
    table_list = tables(sweep_dir, rows, grouped, grid.firmware, sample_hz)
    title = f"EdgeGRU sweep {sweep_dir.name}: {len(rows)} cells"
    for name, png in figures.items():
        write_bytes_atomic(sweep_dir / "figures" / f"{name}.png", png)
    written = {"html": write_bytes_atomic(sweep_dir / "report.html", html_page(title, lines, figures, table_list).encode()),
               "md": write_bytes_atomic(sweep_dir / "report.md", markdown(title, lines, figures, table_list).encode())}
    return {**{k: str(v) for k, v in written.items()}, "cells": len(rows), "figures": list(figures),
            "recommendations": lines}
