"""`edgegru demo`: every stage on one dataset, reusing whatever an earlier demo already finished.

Train (or reuse the identical finished run), then per scheme quantize, export TFLite and ONNX, verify
the runtimes on the first test sequences, and run the generated C on the host and the emulated
Cortex-M cores; then stream one whole test recording (where the dataset has recordings) through the
int8 golden model with smoothing and event detection.  Targets whose tools are missing are skipped, and said so, instead of failing the
demo.  The stages report as they go: `demo` yields (stage, result) pairs for the caller to print.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from edgegru.data import load_dataset
from edgegru.tensor_quant import SCHEMES
from edgegru.stages.export_stage import FORMATS, export_run
from edgegru.stages.firmware_stage import available_targets, firmware_run
from edgegru.stages.quantize_stage import quantize_run
from edgegru.stages.stream_stage import stream_run
from edgegru.stages.train_stage import train_run
from edgegru.stages.verify_stage import verify_run
from edgegru.train import TrainConfig

VERIFY_SEQUENCES = 200
RUNTIME_BACKENDS = ["tflm", "tflite-runtime", "litert-ref", "litert", "onnxruntime"]
FIRMWARE_TARGETS = ["host", "cortex-m4", "cortex-m55"]
STREAM_RECORDINGS = 1  # the first test recording, through the golden int8 model


def demo(dataset_name: str, config: TrainConfig, out: Path | None = None,
         force: bool = False) -> Iterator[tuple[str, object]]:
    """Run the demo; yields ("dataset", Dataset), ("train", metrics), ("skipped", {target: reason}),
    then per scheme ("quantize", metrics), ("export", written) per format, ("verify", report) and
    ("firmware", reports), and at last ("stream", report).  `force` retrains (and so redoes every later stage)."""
    dataset = load_dataset(dataset_name)
    out = Path(out or f"runs/{dataset.name}")
    yield "dataset", dataset
    yield "train", train_run(dataset, config, out, force=force)
    targets, skipped = available_targets(FIRMWARE_TARGETS)
    if skipped:
        yield "skipped", skipped
    for scheme in SCHEMES:
        yield "quantize", quantize_run(out, scheme)
        for fmt in FORMATS:
            yield "export", export_run(out, scheme, fmt)
        yield "verify", verify_run(out, scheme, RUNTIME_BACKENDS, VERIFY_SEQUENCES, reuse=True)
        if targets:
            yield "firmware", firmware_run(out, scheme, targets, max_sequences=VERIFY_SEQUENCES, reuse=True)
    if dataset.recordings.get("test"):
        yield "stream", stream_run(out, "int8", "golden", max_recordings=STREAM_RECORDINGS, reuse=True)
