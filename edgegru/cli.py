"""The `edgegru` command line: argument parsing and printing only; the work lives in `edgegru.stages`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm  # printing above a stage's progress bar

from edgegru.errors import EdgeGRUError
from edgegru.stages import options
from edgegru.stages.bench_stage import BENCHMARKS, LATENCY_STEPS, bench_run
from edgegru.stages.demo_stage import demo
from edgegru.stages.export_stage import export_run
from edgegru.stages.firmware_chain import CHAIN_CLOCK_MHZ, CHAIN_MISMATCHES
from edgegru.stages.firmware_stage import DEFAULT_SAMPLE_HZ, TARGET_NAMES, firmware_run
from edgegru.stages.quantize_stage import quantize_run
from edgegru.stages.report_stage import report_run
from edgegru.stages.sweep_stage import DEFAULT_BACKENDS, Grid, sweep_run
from edgegru.stages.stream_stage import STREAM_BACKENDS, TEST_RECORDINGS, DetectorConfig, stream_run
from edgegru.stages.train_stage import describe_run, train_run, train_seeds_run
from edgegru.stages.verify_stage import not_bit_exact, verify_run


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (exit 2), like every other error of the command."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def threads_count(text: str) -> int | str:
    return text if text == "auto" else positive_int(text)


def comma_list(choices):
    """An argparse type: a comma-separated list of names, each one of `choices`."""
    def parse(text: str) -> list[str]:
        names = [name for name in text.split(",") if name]
        unknown = [name for name in names if name not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(choices)}")
        return names
    return parse


def comma_ints(text: str) -> list[int]:
    """An argparse type: comma-separated integers (their range is the stage's to check)."""
    try:
        return [int(value) for value in text.split(",") if value]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None


def comma_names(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = options.TrainConfig()
    parser.add_argument("--hidden", type=positive_int, default=defaults.hidden, help="GRU state size H (default %(default)s)")
    parser.add_argument("--layers", type=int, choices=(1, 2), default=defaults.layers, help="GRU layers (default %(default)s)")
    parser.add_argument("--variant", choices=options.VARIANTS, default=defaults.variant,
                        help="reset_after = PyTorch/ONNX linear_before_reset=1; reset_before = Cho et al. (default %(default)s)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int, default=None,
                        help=f"optimizer updates (default: {options.PASSES} passes over the training split, clamped "
                             f"to [{options.MIN_STEPS}, {options.MAX_STEPS}])")
    budget.add_argument("--epochs", type=positive_int, default=None, help="the budget in passes over the training split instead")
    parser.add_argument("--threads", type=threads_count, default=defaults.threads,
                        help="torch threads while training (default %(default)s = 1: fastest for these small GRUs, "
                             "idle or busy, see the README)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed for weights and batch order (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="train again even if an identical finished run exists")


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DetectorConfig()
    dataset_default = "(default: the dataset's, else %s)"
    parser.add_argument("--window", type=positive_int, help=f"smoothing window, steps {dataset_default % defaults.window}")
    parser.add_argument("--threshold", type=float, help="detector: mean logit margin of the top class over the runner-up "
                                                        f"{dataset_default % defaults.threshold}")
    parser.add_argument("--min-duration", type=positive_int, help=f"detector: steps {dataset_default % defaults.min_duration}")
    parser.add_argument("--holdoff", type=int, help=f"detector: steps after an event {dataset_default % defaults.holdoff}")


def detector_settings(args: argparse.Namespace) -> dict:
    """The detector options given on the command line (the others come from the dataset's defaults)."""
    given = {"window": args.window, "threshold": args.threshold, "min_duration": args.min_duration,
             "holdoff": args.holdoff}
    return {key: value for key, value in given.items() if value is not None}


def train_config(args: argparse.Namespace):
    return options.TrainConfig(hidden=args.hidden, layers=args.layers, variant=args.variant, steps=args.steps,
                               epochs=args.epochs, threads=args.threads, seed=args.seed)


def print_train_summary(metrics: dict, out: Path) -> None:
    done = ("reused the finished run (same config and data)" if metrics["reused"]
            else f"{metrics['steps_run']} steps ({metrics['epochs_run']} passes, batch {metrics['batch_size_used']}, "
                 f"{metrics['threads_used']} thread(s)) in {metrics['train_seconds']:.1f} s")
    print(
        f"{metrics['dataset']}: GRU H={metrics['hidden']} x{metrics['layers']} {metrics['variant']}, "
        f"{metrics['params']:,} params, {done}\n"
        f"  val accuracy {metrics['val_accuracy']:.4f}   test accuracy {metrics['test_accuracy']:.4f}\n"
        f"  {'kept' if metrics['reused'] else 'wrote'} {out / 'model.pt'} and {out / 'train.json'}"
    )


def command_train(args: argparse.Namespace) -> None:
    if args.seeds == 1:
        metrics = train_run(args.dataset, train_config(args), args.out and Path(args.out), force=args.force)
        print_train_summary(metrics, Path(metrics["run_dir"]))
        return
    summary = train_seeds_run(args.dataset, train_config(args), args.seeds, args.out and Path(args.out), force=args.force)
    for metrics in summary["runs"]:
        print_train_summary(metrics, Path(metrics["run_dir"]))
    for key in ("val_accuracy", "test_accuracy"):
        figures = summary[key]
        print(f"{key.replace('_', ' ')} over seeds {summary['seeds']}: {figures['mean']:.4f} ± {figures['std']:.4f} "
              f"(sample std; min {figures['min']:.4f}, max {figures['max']:.4f})")
    print(f"  wrote {summary['run_dir']}/seeds.json")


def print_quant_summary(metrics: dict, run_dir: Path) -> None:
    dynamic = metrics["dynamic_int8_accuracy"]
    error = metrics["state_error_lsb"]
    print(
        f"{metrics['dataset']} {metrics['scheme']} ({metrics['calibration']} calibration, {metrics['weights']} weights, "
        f"{metrics['rounding']} rounding): "
        f"accuracy float {metrics['float_accuracy']:.4f} -> integer {metrics['quant_accuracy']:.4f} "
        f"({metrics['accuracy_drop_pp']:+.2f} pp drop); torch.ao dynamic int8 "
        f"{'n/a (reset_before)' if dynamic is None else f'{dynamic:.4f}'}\n"
        f"  {metrics['weight_bytes']:,} weight bytes (float {metrics['float_weight_bytes']:,}), "
        f"max accumulator {metrics['max_accumulator_bits']} bits, state error vs float "
        f"mean {error['mean']} / p99 {error['p99']} LSB\n"
        f"  {'kept' if metrics['reused'] else 'wrote'} {run_dir / 'quant' / metrics['scheme']}"
    )


def command_quantize(args: argparse.Namespace) -> None:
    metrics = quantize_run(Path(args.run_dir), args.scheme, args.calibration, args.rounding, force=args.force,
                           weights=args.weights)
    print_quant_summary(metrics, Path(args.run_dir))


def print_export(written: dict) -> None:
    for key, value in written.items():
        if key != "reused":
            print(f"  {key}: {value}")
    if "tflite_bytes" in written:
        print(f"  .tflite is {written['tflite_bytes']:,} bytes for {written['weight_bytes']:,} weight bytes "
              f"(limit {written['size_limit_bytes']:,})")
    if written["reused"]:
        print("  (unchanged artifact: the exported files were kept)")


def command_export(args: argparse.Namespace) -> None:
    print_export(export_run(Path(args.run_dir), args.scheme, args.format, force=args.force))


def print_verify_table(report: dict) -> None:
    print(f"{report['dataset']} {report['scheme']}: {report['sequences']} test sequences, the deployed files "
          f"against the golden model")
    print(f"  {'backend':<16}{'rounding':<10}{'steps':>8}{'elements':>11}{'mismatches':>12}{'max LSB':>9}"
          f"{'bit-exact':>11}{'accuracy':>10}{'golden':>8}")
    for r in report["backends"].values():
        exact = "yes" if r["bit_exact"] else ("NO" if r["exact_required"] else "no (tol.)")
        print(f"  {r['backend']:<16}{r['rounding']:<10}{r['steps']:>8,}{r['elements']:>11,}{r['mismatches']:>12,}"
              f"{r['max_abs_lsb']:>9}{exact:>11}{r['accuracy']:>10.4f}{r['golden_accuracy']:>8.4f}"
              + ("  (unchanged: earlier result)" if r.get("reused") else ""))


def command_verify(args: argparse.Namespace) -> None:
    report = verify_run(Path(args.run_dir), args.scheme, args.backends, args.max_sequences)
    print_verify_table(report)
    failed = not_bit_exact(report)
    if failed:
        raise EdgeGRUError(f"not bit-exact against the golden model: {', '.join(failed)}")


def print_firmware_table(reports: list[dict]) -> None:
    first = reports[0]
    print(f"{first['dataset']} {first['scheme']}: generated C, every element of every step against the golden model")
    print(f"  {'target':<12}{'steps':>9}{'mismatches':>12}{'flash B':>9}{'params x':>9}{'RAM B':>8}{'instr/step':>12}"
          f"{'MAC/step':>10}{'instr/MAC':>11}{'mat-vec':>9}{'us/step':>9}")
    for r in reports:
        def cell(key, fmt="{:,}"):
            return fmt.format(r[key]) if r.get(key) is not None else "-"
        print(f"  {r['target']:<12}{r['steps']:>9,}{r['mismatches']:>12,}{cell('flash_bytes'):>9}"
              f"{cell('parameter_flash_ratio', '{:.3f}'):>9}{cell('ram_bytes'):>8}"
              f"{cell('instructions_per_step_median'):>12}{cell('macs_per_step'):>10}"
              f"{cell('instructions_per_mac', '{:.2f}'):>11}{cell('matvec_instructions_per_mac', '{:.2f}'):>9}"
              f"{cell('microseconds_per_step', '{:.1f}'):>9}" + ("  (unchanged: earlier result)" if r.get("reused") else ""))
    clock = next((r["clock_mhz"] for r in reports if "clock_mhz" in r), None)
    print("  instr/MAC: whole step; mat-vec: the mat-vec kernel alone, steady state, on the recurrent weights"
          + (f"; us/step at {clock:g} MHz, 1 instruction per cycle" if clock else ""))
    for r in reports:
        if r.get("detector"):
            cost = (f"; step + detector {r['pipeline_instructions_per_step_median']:,} instructions, duty cycle "
                    f"{100 * r['duty_cycle']:.2f}% at {r['sample_hz']:g} Hz and {r['clock_mhz']:g} MHz"
                    if "duty_cycle" in r else "")
            print(f"  {r['target']}: C detector {'equals' if r['detector_events_match'] else 'DIFFERS FROM'} the Python "
                  f"integer detector, {r['detector_events']} events over {r['detector_sessions']} test sessions{cost}")
    for r in reports:
        if r.get("chain"):
            print(f"  {r['target']}: {chain_summary(r['chain'])}")


def chain_summary(chain: dict) -> str:
    """One line on the audio chain of a firmware.json."""
    if "skipped" in chain:
        return f"audio chain skipped: {chain['skipped']}"
    line = (f"audio chain, {chain['hops']:,} hops of {chain['recordings']} recordings: front end "
            f"{chain['frontend_mismatches']:,} of {chain['frontend_elements']:,} codes differ, "
            f"{chain['mismatches']:,} logit/state mismatches, {chain['event_mismatches']} event mismatches "
            f"({chain['events']} events, Python {chain['python_events']})")
    if "frontend_clip_mismatches" in chain:
        line += (f"; front end alone on the {chain['frontend_clips']:,} test clips: {chain['frontend_clip_mismatches']} "
                 f"of {chain['frontend_clip_codes']:,} codes differ")
    if "instructions_per_hop" in chain:
        parts = chain["instructions_per_hop"]
        line += (f"; instructions per hop: front end {parts['frontend']:,}, GRU {parts['gru']:,}, detector "
                 f"{parts['detector']:,}, whole hop {parts['total']:,} = {100 * chain['duty_cycle']:.2f}% of "
                 f"{chain['clock_mhz']:g} MHz; flash {chain['flash_bytes']:,} B, static RAM "
                 f"{chain['ram_bytes_static']:,} B + stack {chain['stack_bytes']:,} B")
    return line


def command_firmware(args: argparse.Namespace) -> None:
    detector = detector_settings(args) if args.detector else None
    reports = firmware_run(Path(args.run_dir), args.scheme, args.targets, args.clock_mhz, args.max_sequences,
                           detector=detector, sample_hz=args.sample_hz, chain_clock_mhz=args.chain_clock_mhz)
    print_firmware_table(reports)
    failed = [r["target"] for r in reports if r["mismatches"] or r.get("detector_events_match") is False
              or any(r.get("chain", {}).get(key) for key in CHAIN_MISMATCHES)]
    if failed:
        raise EdgeGRUError(f"the generated C does not match the golden model on: {', '.join(failed)}")


def command_bench(args: argparse.Namespace) -> None:
    for title, text in bench_run(Path(args.run_dir), args.benchmarks or list(BENCHMARKS), args.scheme, args.targets,
                                 args.steps, stream_steps=args.stream_steps, latency_steps=args.latency_steps):
        print(f"{title}\n{text}\n")


def command_report(args: argparse.Namespace) -> None:
    written = report_run(Path(args.sweep_dir), args.sample_hz)
    for line in written["recommendations"]:
        print(line)
    print(f"{written['cells']} cells; wrote {written['html']} and {written['md']}")


def command_sweep(args: argparse.Namespace) -> None:
    grid = Grid(tuple(args.dataset), tuple(args.hidden), tuple(args.layers), tuple(args.variants), tuple(args.schemes),
                args.seeds, tuple(args.backends), tuple(args.firmware), args.max_sequences)
    base = options.TrainConfig(steps=args.steps, epochs=args.epochs, seed=args.seed, threads=args.threads)
    result = sweep_run(Path(args.out), grid, base, args.address, args.cpus, args.threads)
    print(f"{result['cells']} cells: {result['already']} finished before, {result['ran']} run now; "
          f"wrote {args.out}/cells.csv ({len(result['rows'])} rows)")


def command_demo(args: argparse.Namespace) -> None:
    out = None
    for stage, result in demo(args.dataset, train_config(args), args.out and Path(args.out), force=args.force):
        if stage == "dataset":
            print(f"EdgeGRU demo on '{result.name}': {len(result.train)}/{len(result.val)}/{len(result.test)} "
                  f"train/val/test sequences, {result.num_features} features, {result.num_classes} classes")
        elif stage == "train":
            out = Path(result["run_dir"])
            print_train_summary(result, out)
        elif stage == "skipped":
            print(f"skipped {', '.join(result)}: {'; '.join(sorted(set(result.values())))}")
        elif stage == "quantize":
            print_quant_summary(result, out)
        elif stage == "export":
            print(f"  exported {', '.join(k for k in result if k in ('tflite', 'onnx'))}"
                  + (" (unchanged, kept)" if result["reused"] else ""))
        elif stage == "verify":
            print_verify_table(result)
        elif stage == "firmware":
            print_firmware_table(result)
        elif stage == "stream":
            print_stream_report(result)
    print(f"The demo verifies the first test sequences; `edgegru verify {out} --scheme SCHEME --backends ...` "
          f"checks them all.")


def print_stream_report(report: dict) -> None:
    def fmt(value, spec="{:.4f}"):
        return "-" if value is None else spec.format(value)
    print(f"{report['dataset']} {report['scheme'] or ''} {report['backend']}: {report['steps']:,} steps streamed, "
          f"state policy {report['state_policy']}" + ("  (unchanged: earlier result)" if report.get("reused") else ""))
    rows = [(report["state_policy"], report)] + ([("none", report["no_reset"])] if "no_reset" in report else [])
    print(f"  {'state policy':<34}{'frame acc':>10}{'smoothed':>10}{'precision':>10}{'recall':>8}{'F1':>8}"
          f"{'latency':>9}")
    for name, r in rows:
        print(f"  {name:<34}{fmt(r.get('frame_accuracy')):>10}{fmt(r.get('smoothed_frame_accuracy')):>10}"
              f"{fmt(r.get('event_precision')):>10}{fmt(r.get('event_recall')):>8}{fmt(r.get('event_f1')):>8}"
              f"{fmt(r.get('median_latency_steps'), '{:.0f}'):>9}")
    print(f"  windowed test accuracy {fmt(report['windowed_accuracy'])}; latency: median steps from a segment's start "
          f"to its first correct event; {report['event_rule']}")
    if "keyword_scores" in report:
        k = report["keyword_scores"]
        at_recall = next(v for key, v in report.items() if key.startswith("false_alarms_per_hour_at_"))
        print(f"  keywords: {k['detections']} of {k['keywords']} found (recall {fmt(k['recall'])}), {k['misses']} missed, "
              f"{k['false_alarms']} false alarms in {k['hours'] * 60:.1f} min = {fmt(k['false_alarms_per_hour'], '{:.1f}')}"
              f" per hour at threshold {report['detector']['threshold']:g}")
        best = report["highest_recall"]
        reached = (f"{at_recall:.1f} false alarms per hour at 90% recall" if at_recall is not None else
                   f"90% recall not reached: the highest, {best['recall']:.4f}, at threshold {best['threshold']:g} with "
                   f"{best['false_alarms_per_hour']:.1f} false alarms per hour")
        print(f"  {reached} (every threshold: the -det.png plot, `keyword_curve` in the JSON)")
        print(f"  recall ceiling {fmt(report['recall_ceiling'])}: the words whose class tops the smoothed scores at some "
              f"step of their span; no threshold, duration or hold-off of this window finds more")
        print(f"  {report['keyword_rule']}")
    tried = report["state_policy_selection"].get("tried")
    if tried:
        print(f"  chosen on {report['state_policy_selection']['chosen_on']}: "
              + ", ".join(f"{spec} {value:.4f}" for spec, value in tried.items()))


def command_stream(args: argparse.Namespace) -> None:
    detector = detector_settings(args)

    def on_event(recording, event, label, peak_logits):
        tqdm.write(f"  event: recording {recording}, {label}, steps {event.start}-{event.end} "
                   f"(detected at {event.detected}), peak margin {peak_logits:.2f} logits")

    report = stream_run(Path(args.run_dir), args.scheme, args.backend, args.source, detector, args.policy,
                        on_event=on_event)
    print_stream_report(report)
    name = "float" if args.backend == "float" else f"{args.scheme}-{args.backend}"
    print(f"  wrote {args.run_dir}/stream/{name}.json and {name}.png")


def command_info(args: argparse.Namespace) -> None:
    run = describe_run(Path(args.run_dir))
    print(f"{run['dataset']}: GRU H={run['hidden']} x{run['layers']} {run['variant']}, {run['input_size']} features -> "
          f"{run['num_classes']} classes ({', '.join(run['class_names'])}), {run['params']:,} params")


def command_datasets(args: argparse.Namespace) -> None:
    for name in options.DATASETS:
        print(name)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="edgegru",
        description="Train a GRU classifier and take it to a bit-exact full-integer model for edge devices.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    schemes, backends = list(options.SCHEMES), list(options.BACKENDS)

    train = commands.add_parser("train", help="train a float GRU classifier",
                                description="Train a float GRU classifier; writes model.pt and train.json. An identical "
                                            "finished run (same config and data) is reused.")
    train.add_argument("--dataset", required=True, help=f"one of {', '.join(options.DATASETS)}, or a path to a .npz")
    add_train_arguments(train)
    train.add_argument("--seeds", type=positive_int, default=1,
                       help="train this many seeds (--seed, --seed + 1, ...) into OUT/seed-K/ and report mean ± spread "
                            "(default %(default)s)")
    train.add_argument("--out", help="output directory (default runs/DATASET)")
    train.set_defaults(run=command_train)

    demo_parser = commands.add_parser(
        "demo", help="the whole pipeline on the default dataset",
        description="Train on the embedded default dataset, quantize it (int8 and int16x8), export TFLite and ONNX step "
                    "models and verify them, and run the generated C on the host and emulated Cortex-M4/M55, against "
                    "the golden model. What an earlier demo finished is reused; targets whose tools are missing are "
                    "skipped and named.")
    demo_parser.add_argument("--dataset", default=options.DEFAULT_DATASET, help="dataset (default %(default)s)")
    add_train_arguments(demo_parser)
    demo_parser.add_argument("--out", help="output directory (default runs/DATASET)")
    demo_parser.set_defaults(run=command_demo)

    quantize = commands.add_parser(
        "quantize", help="post-training integer quantization with the golden model's accuracy",
        description="Calibrate on the training split, quantize, and measure the integer golden model on the test "
                    "split; writes RUN_DIR/quant/SCHEME/ (model.npz, spec.json, quant.json).")
    quantize.add_argument("run_dir", help="a run directory made by `edgegru train`")
    quantize.add_argument("--scheme", choices=schemes, default="int8", help="int8, or int16x8 (int16 activations) (default %(default)s)")
    quantize.add_argument("--calibration", choices=options.CALIBRATION_METHODS, default="minmax", help="range estimator (default %(default)s)")
    quantize.add_argument("--rounding", choices=list(options.ROUNDING_PROFILES), default="double",
                          help="the runtime whose arithmetic measures the accuracy: double = TFLite Micro / "
                               "tflite-runtime reference; single = LiteRT reference kernels; litert-x86, litert-arm = "
                               "LiteRT's default (XNNPACK) (default %(default)s)")
    quantize.add_argument("--weights", choices=options.WEIGHT_GRANULARITIES, default=options.DEFAULT_WEIGHTS,
                          help="one weight scale per output channel, or per matrix: 12 bytes less per channel in "
                               "the .tflite (default %(default)s)")
    quantize.add_argument("--force", action="store_true", help="quantize again even if nothing changed")
    quantize.set_defaults(run=command_quantize)

    export = commands.add_parser("export", help="write deployable models (TFLite, ONNX)",
                                 description="Export the quantized one-step model (TFLite or integer ONNX) and the float "
                                             "network; writes RUN_DIR/export/SCHEME/ and RUN_DIR/export/float/.")
    export.add_argument("run_dir")
    export.add_argument("--scheme", choices=schemes, default="int8", help="quantized artifact to export (default %(default)s)")
    export.add_argument("--format", choices=options.FORMATS, default="tflite", help="(default %(default)s)")
    export.add_argument("--force", action="store_true", help="write the files again even if the artifact did not change")
    export.set_defaults(run=command_export)

    verify = commands.add_parser(
        "verify", help="check every backend against the golden model, element by element",
        description="Feed every test sequence step by step into each backend, running the files `edgegru export` and "
                    "`edgegru firmware` wrote, and into the golden model in that backend's rounding; updates "
                    "RUN_DIR/verify/SCHEME.json (every backend's latest result).")
    verify.add_argument("run_dir")
    verify.add_argument("--scheme", choices=schemes, default="int8", help="(default %(default)s)")
    verify.add_argument("--backends", type=comma_list(backends), default="tflm,tflite-runtime,litert,litert-ref",
                        help=f"comma-separated: {', '.join(backends)} (default %(default)s)")
    verify.add_argument("--max-sequences", type=positive_int, help="verify only the first N test sequences")
    verify.set_defaults(run=command_verify)

    report = commands.add_parser(
        "report", help="the report of a sweep: report.html and report.md",
        description="From the finished cells of `edgegru sweep` (their own quant.json, verify and firmware.json): "
                    "accuracy against model bytes per scheme with seed spread and the Pareto front, float / int8 / "
                    "int16x8 / torch.ao dynamic int8 against parameters, per-backend agreement, firmware figures, "
                    "one recommendation per size budget. Writes SWEEP_DIR/report.html (self-contained, opens "
                    "offline), report.md and figures/.")
    report.add_argument("sweep_dir", help="a directory written by `edgegru sweep --out`")
    report.add_argument("--sample-hz", type=float, default=DEFAULT_SAMPLE_HZ,
                        help="steps per second on the device, for the firmware duty cycle (default %(default)s)")
    report.set_defaults(run=command_report)

    sweep = commands.add_parser(
        "sweep", help="a grid of models through every stage, on Ray, resumable",
        description="Train, quantize, export and verify (and with --firmware run on emulated cores) every cell of the "
                    "grid, on a local Ray by default or on a Ray cluster (--address). A finished cell is never redone; "
                    "an interrupted sweep, run again, finishes the rest. Writes OUT/runs/RUN/ per model and OUT/cells.csv "
                    "(one row per finished cell); `edgegru report OUT` turns them into report.html and report.md.")
    sweep.add_argument("--dataset", type=comma_names, required=True,
                       help=f"comma-separated: {', '.join(options.DATASETS)} or .npz paths")
    sweep.add_argument("--hidden", type=comma_ints, default="64", help="comma-separated hidden sizes (default %(default)s)")
    sweep.add_argument("--layers", type=comma_ints, default="1", help="comma-separated, 1 or 2 (default %(default)s)")
    sweep.add_argument("--variants", type=comma_names, default="reset_after",
                       help=f"comma-separated: {', '.join(options.VARIANTS)} (default %(default)s)")
    sweep.add_argument("--schemes", type=comma_names, default="int8,int16x8", help="comma-separated (default %(default)s)")
    sweep.add_argument("--seeds", type=int, default=1, help="seeds per model: --seed, --seed + 1, ... (default %(default)s)")
    sweep.add_argument("--seed", type=int, default=options.TrainConfig().seed, help="first seed (default %(default)s)")
    budget = sweep.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int, help="optimizer updates per model (default: the training recipe's)")
    budget.add_argument("--epochs", type=positive_int, help="the budget in passes over the training split instead")
    sweep.add_argument("--backends", type=comma_names, default=",".join(DEFAULT_BACKENDS),
                       help="comma-separated backends verified per cell (default %(default)s)")
    sweep.add_argument("--firmware", type=comma_names, default="",
                       help=f"comma-separated targets to run the generated C on: {', '.join(TARGET_NAMES)} (default none)")
    sweep.add_argument("--max-sequences", type=int, help="verify and run firmware on the first N test sequences only "
                                                         "(default: all; accuracy is always over all)")
    sweep.add_argument("--out", required=True, help="the sweep directory, e.g. runs/sweeps/NAME")
    sweep.add_argument("--address", help="join this Ray cluster (e.g. auto or HOST:6379) instead of starting a local one")
    sweep.add_argument("--cpus", type=positive_int, help="CPUs of the local Ray (default: all)")
    sweep.add_argument("--threads", type=positive_int, default=1,
                       help="CPUs each task declares, and its torch threads (default %(default)s)")
    sweep.set_defaults(run=command_sweep)

    firmware = commands.add_parser(
        "firmware", help="portable C for microcontrollers, run on host and emulated Cortex-M",
        description="Generate C from the quantized artifact into RUN_DIR/firmware/SCHEME/src/, build and run it on each "
                    "target over the test split, compare every element with the golden model, and measure flash, stack "
                    "and instructions per step (exact, from QEMU); writes RUN_DIR/firmware/SCHEME/TARGET/.  When the test "
                    "recordings carry audio (keyword spotting), also streams it hop by hop through the whole chain (front "
                    "end, GRU, detector) against Python, with instructions per 20 ms hop per part.")
    firmware.add_argument("run_dir")
    firmware.add_argument("--scheme", choices=schemes, default="int8")
    firmware.add_argument("--targets", type=comma_list(TARGET_NAMES), default="host,cortex-m4,cortex-m55",
                          help=f"comma-separated: {', '.join(TARGET_NAMES)} (default %(default)s)")
    firmware.add_argument("--clock-mhz", type=float, default=100.0, help="clock for the time per step (default %(default)s)")
    firmware.add_argument("--max-sequences", type=positive_int, help="only the first N test sequences")
    firmware.add_argument("--detector", action="store_true",
                          help="compile the integer smoother and event detector in, and check its events against the "
                               "Python detector's on every test recording")
    firmware.add_argument("--sample-hz", type=float, default=25.0, help="sample rate for the duty cycle (default %(default)s)")
    firmware.add_argument("--chain-clock-mhz", type=float, default=CHAIN_CLOCK_MHZ,
                          help="clock for the duty cycle of the audio chain, datasets with audio (default %(default)s)")
    add_detector_arguments(firmware)
    firmware.set_defaults(run=command_firmware)

    bench = commands.add_parser(
        "bench", help="benchmarks that print figures (golden vs float, backend latency, emulated cores, streams)",
        description="Runs every benchmark unless some are chosen. batch: the golden model against torch float on the "
                    "same model and test split, batched, steps per second and the ratio. latency: microseconds per "
                    "step of each deployed backend (LiteRT, tflite-runtime, TFLite Micro, onnxruntime, the C host "
                    "build) and the golden step, batch 1, side by side. firmware: the generated C on emulated Cortex-M cores, "
                    "optimized (DSP/MVE) and portable paths side by side: whole step and mat-vec alone, exact "
                    "instruction counts from QEMU (skipped, with the reason, where the toolchain is missing). stream: "
                    "a long stream (the test recordings repeated) through the golden model, the C host build and the "
                    "float model with the state carried: steps per second side by side, state range, memory, and "
                    "golden vs C bit-equality.")
    bench.add_argument("run_dir", nargs="?", default="runs/watch", help="a quantized run (default %(default)s, made by `make demo`)")
    bench.add_argument("--batch", dest="benchmarks", action="append_const", const="batch", help="golden vs torch float")
    bench.add_argument("--latency", dest="benchmarks", action="append_const", const="latency", help="per-step latency")
    bench.add_argument("--latency-steps", type=positive_int, default=LATENCY_STEPS, help="test steps timed per backend (default %(default)s)")
    bench.add_argument("--firmware", dest="benchmarks", action="append_const", const="firmware", help="the generated C")
    bench.add_argument("--stream", dest="benchmarks", action="append_const", const="stream", help="a long stream")
    bench.add_argument("--stream-steps", type=positive_int, default=1_000_000, help="steps of the long stream (default %(default)s)")
    bench.add_argument("--scheme", type=comma_list(schemes), default="int8,int16x8", help="comma-separated schemes (default %(default)s)")
    bench.add_argument("--targets", type=comma_list(TARGET_NAMES), default="cortex-m4,cortex-m55", help="(default %(default)s)")
    bench.add_argument("--steps", type=positive_int, default=20, help="random steps per build (default %(default)s)")
    bench.set_defaults(run=command_bench)

    stream = commands.add_parser(
        "stream", help="stream recordings or a file through a backend: smoothing, events, metrics",
        description="Feed a stream one step at a time through a backend with the state carried (a state policy for "
                    "unbounded streams, chosen on the validation recordings unless given), smooth the class scores "
                    "over a moving window, detect events (threshold, minimum duration, hold-off) and print each as "
                    "it happens; writes RUN_DIR/stream/SCHEME-BACKEND.json (float: float.json) and a timeline .png. "
                    "On keyword streams: recall and false alarms per hour, their curve over thresholds (-det.png), "
                    "false alarms per hour at 90% recall and the recall ceiling no detector setting can pass.")
    stream.add_argument("run_dir")
    stream.add_argument("--scheme", choices=schemes, default="int8", help="(default %(default)s; ignored for float)")
    stream.add_argument("--backend", choices=STREAM_BACKENDS, default="golden", metavar="BACKEND",
                        help=f"one of {', '.join(STREAM_BACKENDS)} (default %(default)s)")
    stream.add_argument("--source", default=TEST_RECORDINGS,
                        help="test-recordings (each test subject's recordings back to back), FILE.npz (x [T, F], "
                             "optional y [T]), FILE.csv (F numbers per line, optionally a label) or, for a "
                             "keyword-spotting run, FILE.wav (mono PCM: 8-bit, 16/32-bit integer or 32-bit float; "
                             "another rate is resampled to 16 kHz) (default %(default)s)")
    stream.add_argument("--policy", default="auto", help="auto, none, reset:N or staggered:N:K (default %(default)s)")
    add_detector_arguments(stream)
    stream.set_defaults(run=command_stream)

    info = commands.add_parser("info", help="describe a trained run", description="Load and describe RUN_DIR/model.pt.")
    info.add_argument("run_dir", help="a run directory (or its model.pt)")
    info.set_defaults(run=command_info)

    datasets = commands.add_parser("datasets", help="list the built-in datasets")
    datasets.set_defaults(run=command_datasets)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except EdgeGRUError as error:
        print(f"edgegru: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgegru: interrupted; earlier artifacts are left as they were", file=sys.stderr)
        return 130
    return 0
