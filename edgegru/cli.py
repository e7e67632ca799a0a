"""The `edgegru` command line: argument parsing and printing only; the work lives in the stages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgegru.calibrate import CALIBRATION_METHODS
from edgegru.artifact import artifact_dir, load_artifact
from edgegru.checkpoint import load_checkpoint, run_dataset
from edgegru.data import DATASETS, DEFAULT_DATASET, load_dataset
from edgegru.errors import EdgeGRUError
from edgegru.golden import ROUNDING_PROFILES
from edgegru.model import VARIANTS, count_parameters
from edgegru.quant_params import SCHEMES
from edgegru.quantize_run import quantize_run
from edgegru.train import TrainConfig, train_run


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    parser.add_argument("--hidden", type=positive_int, default=defaults.hidden, help="GRU state size H (default %(default)s)")
    parser.add_argument("--layers", type=int, choices=(1, 2), default=defaults.layers, help="GRU layers (default %(default)s)")
    parser.add_argument("--variant", choices=VARIANTS, default=defaults.variant,
                        help="reset_after = PyTorch/ONNX linear_before_reset=1; reset_before = Cho et al. (default %(default)s)")
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs, help="maximum epochs (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed for weights and batch order (default %(default)s)")


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(hidden=args.hidden, layers=args.layers, variant=args.variant, epochs=args.epochs, seed=args.seed)


def print_train_summary(metrics: dict, out: Path) -> None:
    print(
        f"{metrics['dataset']}: GRU H={metrics['hidden']} x{metrics['layers']} {metrics['variant']}, "
        f"{metrics['params']:,} params, {metrics['epochs_run']} epochs in {metrics['train_seconds']:.1f} s\n"
        f"  val accuracy {metrics['val_accuracy']:.4f}   test accuracy {metrics['test_accuracy']:.4f}\n"
        f"  wrote {out / 'model.pt'} and {out / 'train.json'}"
    )


def command_train(args: argparse.Namespace) -> None:
    dataset = load_dataset(args.dataset)
    out = Path(args.out or f"runs/{dataset.name}")
    print_train_summary(train_run(dataset, train_config(args), out), out)


DEMO_VERIFY_SEQUENCES = 200
DEMO_BACKENDS = ["tflm", "tflite-runtime", "litert-ref", "litert", "onnxruntime", "c-host", "cortex-m4", "cortex-m55"]


def command_demo(args: argparse.Namespace) -> None:
    dataset = load_dataset(args.dataset)
    out = Path(args.out or f"runs/{dataset.name}")
    print(f"EdgeGRU demo on '{dataset.name}': {len(dataset.train)}/{len(dataset.val)}/{len(dataset.test)} "
          f"train/val/test sequences, {dataset.num_features} features, {dataset.num_classes} classes")
    print_train_summary(train_run(dataset, train_config(args), out), out)
    from export.runs import export_run, verify_run

    for scheme in SCHEMES:
        print_quant_summary(quantize_run(out, scheme), artifact_dir(out, scheme))
        for fmt in ("tflite", "onnx"):
            export_run(out, scheme, fmt)
        print_verify_table(verify_run(out, scheme, DEMO_BACKENDS, DEMO_VERIFY_SEQUENCES))
    print(f"The demo verifies the first {DEMO_VERIFY_SEQUENCES} test sequences; "
          f"`edgegru verify {out} --scheme SCHEME` checks them all.")


def print_quant_summary(metrics: dict, out: Path) -> None:
    dynamic = metrics["dynamic_int8_accuracy"]
    error = metrics["state_error_lsb"]
    print(
        f"{metrics['dataset']} {metrics['scheme']} ({metrics['calibration']} calibration, {metrics['rounding']} rounding): "
        f"accuracy float {metrics['float_accuracy']:.4f} -> integer {metrics['quant_accuracy']:.4f} "
        f"({metrics['accuracy_drop_pp']:+.2f} pp drop); torch.ao dynamic int8 "
        f"{'n/a (reset_before)' if dynamic is None else f'{dynamic:.4f}'}\n"
        f"  {metrics['weight_bytes']:,} weight bytes (float {metrics['float_weight_bytes']:,}), "
        f"max accumulator {metrics['max_accumulator_bits']} bits, state error vs float "
        f"mean {error['mean']} / p99 {error['p99']} LSB\n"
        f"  wrote {out}"
    )


def command_quantize(args: argparse.Namespace) -> None:
    metrics = quantize_run(Path(args.run_dir), args.scheme, args.calibration, args.rounding)
    print_quant_summary(metrics, artifact_dir(args.run_dir, args.scheme))


def command_export(args: argparse.Namespace) -> None:
    from export.runs import export_run

    written = export_run(Path(args.run_dir), args.scheme, args.format)
    for key, value in written.items():
        print(f"  {key}: {value}")
    if "tflite_bytes" in written:
        print(f"  .tflite is {written['tflite_bytes']:,} bytes for {written['weight_bytes']:,} weight bytes "
              f"(limit {written['size_limit_bytes']:,})")


def print_verify_table(report: dict) -> None:
    print(f"{report['dataset']} {report['scheme']}: {report['sequences']} test sequences, golden accuracy "
          + ", ".join(f"{k} {v:.4f}" for k, v in report["golden_accuracy"].items()))
    print(f"  {'backend':<16}{'rounding':<10}{'steps':>8}{'elements':>11}{'mismatches':>12}{'max LSB':>9}"
          f"{'bit-exact':>11}{'accuracy':>10}")
    for r in report["backends"].values():
        exact = "yes" if r["bit_exact"] else ("NO" if r["exact_required"] else "no (tol.)")
        print(f"  {r['backend']:<16}{r['rounding']:<10}{r['steps']:>8,}{r['elements']:>11,}{r['mismatches']:>12,}"
              f"{r['max_abs_lsb']:>9}{exact:>11}{r['accuracy']:>10.4f}")


def command_verify(args: argparse.Namespace) -> None:
    from export.runs import verify_run

    report = verify_run(Path(args.run_dir), args.scheme, args.backends.split(","), args.max_sequences)
    print_verify_table(report)
    failed = [r["backend"] for r in report["backends"].values() if r["exact_required"] and not r["bit_exact"]]
    if failed:
        raise EdgeGRUError(f"not bit-exact against the golden model: {', '.join(failed)}")


def command_report(args: argparse.Namespace) -> None:
    from edgegru.report import build_report, markdown_table

    rows = build_report(Path(args.out), args.datasets.split(","), [int(h) for h in args.hidden.split(",")],
                        args.variants.split(","), args.layers, args.epochs)
    print(markdown_table(rows), end="")
    print(f"wrote {args.out}/report.json, report.md and accuracy_vs_size.png")


def command_firmware(args: argparse.Namespace) -> None:
    from firmware_sim.firmware_run import firmware_run

    run_dir = Path(args.run_dir)
    model = load_artifact(artifact_dir(run_dir, args.scheme))
    dataset = run_dataset(run_dir)
    reports = firmware_run(model, dataset.test, args.targets.split(","), run_dir / "firmware" / args.scheme,
                           args.clock_mhz, args.max_sequences)
    print(f"{dataset.name} {args.scheme}: generated C, every element of every step against the golden model")
    print(f"  {'target':<12}{'steps':>9}{'mismatches':>12}{'flash B':>9}{'params x':>9}{'RAM B':>8}{'instr/step':>12}"
          f"{'MAC/step':>10}{'instr/MAC':>11}{'mat-vec':>9}{f'us @{args.clock_mhz:g}MHz':>13}")
    for r in reports:
        cell = lambda key, fmt="{:,}": fmt.format(r[key]) if r.get(key) is not None else "-"
        print(f"  {r['target']:<12}{r['steps']:>9,}{r['mismatches']:>12,}{cell('flash_bytes'):>9}"
              f"{cell('parameter_flash_ratio', '{:.3f}'):>9}{cell('ram_bytes'):>8}"
              f"{cell('instructions_per_step_median'):>12}{cell('macs_per_step'):>10}"
              f"{cell('instructions_per_mac', '{:.2f}'):>11}{cell('matvec_instructions_per_mac', '{:.2f}'):>9}"
              f"{cell('microseconds_per_step', '{:.1f}'):>13}")
    print("  instr/MAC: whole step; mat-vec: the mat-vec kernel alone, steady state, on the recurrent weights")
    if any(r["mismatches"] for r in reports):
        raise EdgeGRUError("the generated C does not match the golden model on: "
                           + ", ".join(r["target"] for r in reports if r["mismatches"]))


def command_bench(args: argparse.Namespace) -> None:
    if not args.firmware:
        raise EdgeGRUError("choose a benchmark: --firmware (the only one so far)")
    from firmware_sim.bench import bench_firmware, format_bench

    for scheme in args.scheme.split(","):
        model = load_artifact(artifact_dir(args.run_dir, scheme))
        print(format_bench(bench_firmware(model, tuple(args.targets.split(",")), steps=args.steps)))


def command_info(args: argparse.Namespace) -> None:
    checkpoint = load_checkpoint(Path(args.run_dir))
    config = checkpoint.model.config
    print(f"{checkpoint.dataset}: GRU H={config.hidden} x{config.layers} {config.variant}, "
          f"{config.input_size} features -> {config.num_classes} classes ({', '.join(checkpoint.class_names)}), "
          f"{count_parameters(checkpoint.model):,} params")


def command_datasets(args: argparse.Namespace) -> None:
    for name in DATASETS:
        print(name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgegru",
        description="Train a GRU classifier and take it to a bit-exact full-integer model for edge devices.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a float GRU classifier",
                                description="Train a float GRU classifier; writes model.pt and train.json.")
    train.add_argument("--dataset", required=True, help=f"one of {', '.join(DATASETS)}, or a path to a .npz")
    add_train_arguments(train)
    train.add_argument("--out", help="output directory (default runs/DATASET)")
    train.set_defaults(run=command_train)

    demo = commands.add_parser("demo", help="the whole pipeline on the default dataset",
                               description="Train on the embedded default dataset, quantize it (int8 and int16x8), export TFLite and "
                                           "ONNX step models and verify them, with the generated C on host and "
                                           "emulated Cortex-M4/M55, against the golden model.")
    demo.add_argument("--dataset", default=DEFAULT_DATASET, help="dataset (default %(default)s)")
    add_train_arguments(demo)
    demo.add_argument("--out", help="output directory (default runs/DATASET)")
    demo.set_defaults(run=command_demo)

    quantize = commands.add_parser(
        "quantize", help="post-training integer quantization with the golden model's accuracy",
        description="Calibrate on the training split, quantize, and measure the integer golden model on the test "
                    "split; writes RUN_DIR/quant/SCHEME/ (model.npz, spec.json, quant.json).")
    quantize.add_argument("run_dir", help="a run directory made by `edgegru train`")
    quantize.add_argument("--scheme", choices=SCHEMES, default="int8", help="int8, or int16x8 (int16 activations) (default %(default)s)")
    quantize.add_argument("--calibration", choices=CALIBRATION_METHODS, default="minmax", help="range estimator (default %(default)s)")
    quantize.add_argument("--rounding", choices=list(ROUNDING_PROFILES), default="double",
                          help="double = TFLite Micro / tflite-runtime reference; single = LiteRT (default %(default)s)")
    quantize.set_defaults(run=command_quantize)

    export = commands.add_parser("export", help="write deployable models (TFLite, ONNX)",
                                 description="Export the quantized one-step model (TFLite) or the float network (ONNX).")
    export.add_argument("run_dir")
    export.add_argument("--scheme", choices=SCHEMES, default="int8", help="quantized artifact to export (default %(default)s)")
    export.add_argument("--format", choices=("tflite", "onnx"), default="tflite", help="(default %(default)s)")
    export.set_defaults(run=command_export)

    verify = commands.add_parser(
        "verify", help="check every backend against the golden model, element by element",
        description="Feed every test sequence step by step into each backend and into the golden model in that "
                    "backend's rounding; writes RUN_DIR/verify/SCHEME.json.")
    verify.add_argument("run_dir")
    verify.add_argument("--scheme", choices=SCHEMES, default="int8", help="(default %(default)s)")
    verify.add_argument("--backends", default="tflm,tflite-runtime,litert,litert-ref",
                        help="comma-separated: tflm, tflite-runtime, litert, litert-ref, onnxruntime, onnx-reference, "
                             "c-host, cortex-m4, cortex-m55 (default %(default)s)")
    verify.add_argument("--max-sequences", type=positive_int, help="verify only the first N test sequences")
    verify.set_defaults(run=command_verify)

    report = commands.add_parser(
        "report", help="accuracy vs size across datasets, sizes, variants and schemes",
        description="Train (or reuse) one run per combination, quantize it in both schemes, and write a table and a "
                    "plot of test accuracy against parameter bytes.")
    report.add_argument("--datasets", default="japanese-vowels,digits", help="comma-separated (default %(default)s)")
    report.add_argument("--hidden", default="16,32,64", help="comma-separated hidden sizes (default %(default)s)")
    report.add_argument("--variants", default="reset_after", help="comma-separated (default %(default)s)")
    report.add_argument("--layers", type=int, choices=(1, 2), default=1)
    report.add_argument("--epochs", type=positive_int, default=TrainConfig().epochs)
    report.add_argument("--out", default="runs/report", help="output directory (default %(default)s)")
    report.set_defaults(run=command_report)

    firmware = commands.add_parser(
        "firmware", help="portable C for microcontrollers, run on host and emulated Cortex-M",
        description="Generate C from the quantized artifact, build and run it on each target over the test "
                    "split, compare every element with the golden model, and measure flash, stack and "
                    "instructions per step (exact, from QEMU); writes RUN_DIR/firmware/SCHEME/TARGET/.")
    firmware.add_argument("run_dir")
    firmware.add_argument("--scheme", choices=SCHEMES, default="int8")
    firmware.add_argument("--targets", default="host,cortex-m4,cortex-m55",
                          help="comma-separated: host, host-clang, cortex-m3, cortex-m4, cortex-m7, cortex-m33, "
                               "cortex-m55 (default %(default)s)")
    firmware.add_argument("--clock-mhz", type=float, default=100.0, help="clock for the time per step (default %(default)s)")
    firmware.add_argument("--max-sequences", type=positive_int, help="only the first N test sequences")
    firmware.set_defaults(run=command_firmware)

    bench = commands.add_parser(
        "bench", help="benchmarks that print figures (instructions per MAC on emulated cores)",
        description="--firmware: the generated C on emulated Cortex-M cores, optimized (DSP/MVE) and portable paths "
                    "side by side: whole step and mat-vec alone, exact instruction counts from QEMU.")
    bench.add_argument("run_dir", nargs="?", default="runs/watch", help="a quantized run (default %(default)s)")
    bench.add_argument("--firmware", action="store_true", help="benchmark the generated C")
    bench.add_argument("--scheme", default="int8,int16x8", help="comma-separated schemes (default %(default)s)")
    bench.add_argument("--targets", default="cortex-m4,cortex-m55", help="(default %(default)s)")
    bench.add_argument("--steps", type=positive_int, default=20, help="random steps per build (default %(default)s)")
    bench.set_defaults(run=command_bench)

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
