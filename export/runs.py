"""Run-level export and verification: what `edgegru export` and `edgegru verify` do to `runs/NAME/`.

Layout written here:
    runs/NAME/export/<scheme>/model.tflite   the integer one-step model
    runs/NAME/export/<scheme>/model.json     its device sidecar (quantization, normalization, classes)
    runs/NAME/export/float/step.tflite       the float32 step model of the trained network
    runs/NAME/export/<scheme>/model.onnx     the integer one-step model (integer ONNX ops)
    runs/NAME/export/float/model.onnx        the float network on the ONNX GRU op
    runs/NAME/verify/<scheme>.json           per-backend verification against the golden model
"""

from __future__ import annotations

from pathlib import Path

from edgegru.artifact import artifact_dir, load_artifact
from edgegru.atomic import write_bytes_atomic, write_json_atomic
from edgegru.checkpoint import load_checkpoint, run_dataset
from edgegru.errors import EdgeGRUError
from export.onnx_float import float_onnx_model
from export.onnx_integer import quantized_step_onnx
from export.tflite_export import device_sidecar, float_step_tflite, quantized_step_tflite
from export.verify import verify

FORMATS = ("tflite", "onnx")
TFLITE_SIZE_SLACK = 4096  # bytes beyond 1.5x the weight bytes a .tflite may take


def export_run(run_dir: Path, scheme: str, fmt: str) -> dict:
    """Write the exports of one format; returns {artifact name: path, plus sizes}."""
    run_dir = Path(run_dir)
    if fmt not in FORMATS:
        raise EdgeGRUError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    checkpoint = load_checkpoint(run_dir)
    out, float_dir = run_dir / "export" / scheme, run_dir / "export" / "float"
    model = load_artifact(artifact_dir(run_dir, scheme))
    if fmt == "onnx":
        float_path = write_bytes_atomic(float_dir / "model.onnx", float_onnx_model(checkpoint).SerializeToString())
        path = write_bytes_atomic(out / "model.onnx", quantized_step_onnx(model).SerializeToString())
        return {"onnx": str(path), "onnx_bytes": path.stat().st_size, "float_onnx": str(float_path)}
    tflite = quantized_step_tflite(model)
    written = {
        "tflite": str(write_bytes_atomic(out / "model.tflite", tflite)),
        "sidecar": str(write_json_atomic(out / "model.json", device_sidecar(model))),
        "float_tflite": str(write_bytes_atomic(float_dir / "step.tflite", float_step_tflite(checkpoint))),
        "tflite_bytes": len(tflite),
        "weight_bytes": model.weight_bytes(),
    }
    written["size_limit_bytes"] = int(1.5 * written["weight_bytes"]) + TFLITE_SIZE_SLACK
    return written


def verify_run(run_dir: Path, scheme: str, backends: list[str], max_sequences: int | None = None,
               progress: bool = True) -> dict:
    """Verify the backends on the run's test split and write `verify/<scheme>.json`."""
    run_dir = Path(run_dir)
    model = load_artifact(artifact_dir(run_dir, scheme))
    dataset = run_dataset(run_dir)
    report = {"dataset": dataset.name, **verify(model, backends, dataset.test, max_sequences, progress)}
    write_json_atomic(run_dir / "verify" / f"{scheme}.json", report)
    return report
