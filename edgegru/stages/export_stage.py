"""`edgegru export`: write the deployable models of a quantized run into `runs/NAME/export/`.

`export/<scheme>/manifest.json` records, per format, the digest of the artifact the files were made
from and of each file written; `edgegru verify` refuses an export made from another artifact, and a
repeated export of an unchanged artifact reuses the files (`force=True` writes them again).
"""

from __future__ import annotations

from pathlib import Path

from edgegru.artifact import load_artifact
from edgegru.atomic import write_bytes_atomic, write_json_atomic
from edgegru.checkpoint import load_checkpoint
from edgegru.errors import EdgeGRUError
from edgegru.stages.run_layout import RunLayout, artifact_digest, file_digest, read_json
from export.onnx_float import float_onnx_model
from export.onnx_integer import quantized_step_onnx
from export.tflite_export import device_sidecar, float_step_tflite, quantized_step_tflite

FORMATS = ("tflite", "onnx")
# The file each format's backends load, inside export/<scheme>/.
DEPLOYED_FILE = {"tflite": "model.tflite", "onnx": "model.onnx"}
TFLITE_SIZE_SLACK = 4096  # bytes beyond 1.5x the weight bytes a .tflite may take


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise EdgeGRUError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    return fmt


def _write_files(layout: RunLayout, scheme: str, fmt: str) -> tuple[dict[str, Path], dict]:
    """Write one format's files; returns {name: path} and the figures to report."""
    model = load_artifact(layout.quant_dir(scheme))
    out = layout.export_dir(scheme)
    if fmt == "onnx":
        paths = {
            "onnx": write_bytes_atomic(out / DEPLOYED_FILE["onnx"], quantized_step_onnx(model).SerializeToString()),
            "float_onnx": write_bytes_atomic(layout.float_export_dir / "model.onnx",
                                             float_onnx_model(load_checkpoint(layout.root)).SerializeToString()),
        }
        return paths, {"onnx_bytes": paths["onnx"].stat().st_size}
    tflite = quantized_step_tflite(model)
    paths = {
        "tflite": write_bytes_atomic(out / DEPLOYED_FILE["tflite"], tflite),
        "sidecar": write_json_atomic(out / "model.json", device_sidecar(model)),
        "float_tflite": write_bytes_atomic(layout.float_export_dir / "step.tflite",
                                           float_step_tflite(load_checkpoint(layout.root))),
    }
    weight_bytes = model.weight_bytes()
    return paths, {"tflite_bytes": len(tflite), "weight_bytes": weight_bytes,
                   "size_limit_bytes": int(1.5 * weight_bytes) + TFLITE_SIZE_SLACK}


def _reusable(layout: RunLayout, entry: dict | None, artifact: str) -> bool:
    if not entry or entry.get("artifact_sha256") != artifact:
        return False
    files = [layout.root / relative for relative, _ in entry.get("files", {}).values()]
    return all(path.is_file() for path in files) and all(
        file_digest(path) == digest for path, (_, digest) in zip(files, entry["files"].values()))


def export_run(run_dir: Path, scheme: str, fmt: str, force: bool = False) -> dict:
    """Write (or reuse) the exports of one format; returns {name: path, figures..., reused}."""
    layout = RunLayout(Path(run_dir))
    check_format(fmt)
    artifact = artifact_digest(layout, scheme)
    manifest = read_json(layout.export_manifest(scheme)) or {}
    entry = manifest.get(fmt)
    if force or not _reusable(layout, entry, artifact):
        paths, figures = _write_files(layout, scheme, fmt)
        entry = {"artifact_sha256": artifact, "figures": figures,
                 "files": {name: [str(path.relative_to(layout.root)), file_digest(path)]
                           for name, path in paths.items()}}
        manifest[fmt] = entry
        write_json_atomic(layout.export_manifest(scheme), manifest)
        reused = False
    else:
        reused = True
    return {**{name: str(layout.root / relative) for name, (relative, _) in entry["files"].items()},
            **entry["figures"], "reused": reused}


def deployed_model(run_dir: Path, scheme: str, fmt: str) -> bytes:
    """The bytes of the exported model a user deploys, after checking it was made from the current
    artifact; a missing or stale export is an error naming the command that writes it."""
    layout = RunLayout(Path(run_dir))
    path = layout.export_dir(scheme) / DEPLOYED_FILE[check_format(fmt)]
    command = f"`edgegru export {layout.root} --scheme {scheme} --format {fmt}`"
    if not path.is_file():
        raise EdgeGRUError(f"no exported {fmt} model at {path}; run {command} first")
    entry = (read_json(layout.export_manifest(scheme)) or {}).get(fmt) or {}
    if entry.get("artifact_sha256") != artifact_digest(layout, scheme):
        raise EdgeGRUError(f"{path} was exported from another quantized model (stale); run {command} again")
    return path.read_bytes()
