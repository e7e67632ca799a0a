"""Where a run keeps its files, and the digests that tell a finished stage from a stale one.

    runs/NAME/model.pt, train.json                 the trained float model (train)
    runs/NAME/quant/<scheme>/                      the quantized artifact, quant.json (quantize)
    runs/NAME/export/<scheme>/model.tflite, .json  the integer one-step model and its sidecar (export)
    runs/NAME/export/<scheme>/model.onnx           the integer one-step ONNX model (export)
    runs/NAME/export/<scheme>/manifest.json        which artifact each export was made from
    runs/NAME/export/float/step.tflite, model.onnx the float networks (export)
    runs/NAME/verify/<scheme>.json                 every backend's latest verification (verify)
    runs/NAME/firmware/<scheme>/src/               the generated C sources (firmware)
    runs/NAME/firmware/<scheme>/<target>/          the build and firmware.json per target (firmware)

A stage records the digest of what it was made from (the data and config for training, `model.pt`
for quantization, the artifact's `spec.json` for exports and C sources), so a later stage can refuse
a stale file and a repeated command can reuse a finished one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgegru.artifact import SPEC_FILE
from edgegru.data import Dataset
from edgegru.errors import EdgeGRUError


@dataclass(frozen=True)
class RunLayout:
    root: Path

    @property
    def checkpoint(self) -> Path:
        return self.root / "model.pt"

    @property
    def train_json(self) -> Path:
        return self.root / "train.json"

    def quant_dir(self, scheme: str) -> Path:
        return self.root / "quant" / scheme

    def quant_json(self, scheme: str) -> Path:
        return self.quant_dir(scheme) / "quant.json"

    def export_dir(self, scheme: str) -> Path:
        return self.root / "export" / scheme

    @property
    def float_export_dir(self) -> Path:
        return self.root / "export" / "float"

    def export_manifest(self, scheme: str) -> Path:
        return self.export_dir(scheme) / "manifest.json"

    def verify_json(self, scheme: str) -> Path:
        return self.root / "verify" / f"{scheme}.json"

    def firmware_dir(self, scheme: str) -> Path:
        return self.root / "firmware" / scheme

    def c_sources_dir(self, scheme: str) -> Path:
        return self.firmware_dir(scheme) / "src"

    def c_manifest(self, scheme: str) -> Path:
        return self.c_sources_dir(scheme) / "manifest.json"


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_digest(directory: Path) -> str:
    """SHA-256 over the names and bytes of every file in `directory` (sorted); '' when it is missing."""
    directory = Path(directory)
    if not directory.is_dir():
        return ""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def artifact_digest(layout: RunLayout, scheme: str) -> str:
    """The quantized artifact's identity: `spec.json` holds a SHA-256 of every integer tensor."""
    spec = layout.quant_dir(scheme) / SPEC_FILE
    if not spec.is_file():
        raise EdgeGRUError(f"no quantized model in {layout.quant_dir(scheme)}; run `edgegru quantize {layout.root} "
                           f"--scheme {scheme}` first")
    return file_digest(spec)


def data_digest(dataset: Dataset) -> str:
    """SHA-256 over every split's sequences, lengths and labels, and the class names."""
    digest = hashlib.sha256()
    for split in (dataset.train, dataset.val, dataset.test):
        for array in (split.x, split.lengths, split.y):
            digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("\n".join(dataset.class_names).encode())
    return digest.hexdigest()


def read_json(path: Path) -> dict | None:
    """A stage's record, or None when it is missing or unreadable (the stage then runs again)."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
