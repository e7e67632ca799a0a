"""The quantized-model artifact: `model.npz` (integer tensors) + `spec.json` (everything else).

`spec.json` holds the format name and version, scheme, GRU config, the scale/zero point/dtype of every
activation, per-channel weight scales, every op's fixed-point parameters (scalars in JSON, arrays in
the npz), the normalization statistics, class names, and a SHA-256 per integer tensor.  Loading
validates all of it: another version, a missing or corrupted tensor, or a shape that does not fit
the config is refused with a clear error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from edgegru import integer_ops
from edgegru.atomic import write_bytes_atomic, write_json_atomic
from edgegru.data import Normalization
from edgegru.errors import EdgeGRUError
from edgegru.tensor_quant import SCHEMES, TensorQuant
from edgegru.quantize import QuantizedModel

FORMAT = "edgegru-quantized"
# 2: FULLY_CONNECTED params carry the real multiplier (LiteRT's requantization).
# 3: values the kernels derived on every call are prepared: FULLY_CONNECTED `output_multiplier_q15`
#    (int16x8), and int16 LOGISTIC/TANH `input_multiplier`/`input_left_shift` are the effective ones
#    (the power-of-two input scale is stored as 3, 0, never as multiplier 0).
VERSION = 3
TENSORS_FILE, SPEC_FILE = "model.npz", "spec.json"


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def save_artifact(directory: Path, model: QuantizedModel) -> None:
    """Write the artifact into `directory` (each file atomically; tensors first, spec last)."""
    arrays = {f"weight/{k}": v for k, v in model.weights.items()}
    arrays.update({f"bias/{k}": v for k, v in model.biases.items()})
    op_params = {}
    for name, params in model.op_params.items():
        scalars = {}
        for key, value in dataclasses.asdict(params).items():
            if isinstance(value, np.ndarray):
                arrays[f"op/{name}/{key}"] = value
            else:
                scalars[key] = value
        op_params[name] = {"class": type(params).__name__, "fields": scalars}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    spec = {
        "format": FORMAT,
        "version": VERSION,
        "scheme": model.scheme,
        "calibration": model.calibration,
        "config": model.config,
        "tensors": {k: dataclasses.asdict(v) for k, v in model.tensors.items()},
        "weight_scales": {k: v.tolist() for k, v in model.weight_scales.items()},
        "op_params": op_params,
        "normalization": {"mean": model.normalization.mean.tolist(), "std": model.normalization.std.tolist(),
                          **({"codes": True} if model.normalization.codes else {})},
        "class_names": model.class_names,
        "meta": model.meta,
        "sha256": {k: _digest(v) for k, v in arrays.items()},
    }
    write_bytes_atomic(Path(directory) / TENSORS_FILE, buffer.getvalue())
    write_json_atomic(Path(directory) / SPEC_FILE, spec)


def load_artifact(directory: Path) -> QuantizedModel:
    directory = Path(directory)
    spec_path, tensors_path = directory / SPEC_FILE, directory / TENSORS_FILE
    if not spec_path.is_file() or not tensors_path.is_file():
        raise EdgeGRUError(f"no quantized model in {directory}; run `edgegru quantize` first")
    try:
        spec = json.loads(spec_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EdgeGRUError(f"{spec_path}: not valid JSON ({error})") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise EdgeGRUError(f"{spec_path}: not an EdgeGRU quantized model (no '{FORMAT}' marker)")
    if spec.get("version") != VERSION:
        raise EdgeGRUError(f"{spec_path}: artifact version {spec.get('version')}, this EdgeGRU reads version "
                           f"{VERSION}; re-run `edgegru quantize`")
    try:
        with np.load(tensors_path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise EdgeGRUError(f"{tensors_path}: unreadable ({error}); re-run `edgegru quantize`") from None
    for key, digest in spec["sha256"].items():
        if key not in arrays:
            raise EdgeGRUError(f"{tensors_path}: tensor '{key}' is missing")
        if _digest(arrays[key]) != digest:
            raise EdgeGRUError(f"{tensors_path}: tensor '{key}' is corrupted (checksum mismatch)")
    try:
        model = _build(spec, arrays)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise EdgeGRUError(f"{spec_path}: inconsistent artifact ({error})") from None
    _check_shapes(model)
    return model


def _build(spec: dict, arrays: dict) -> QuantizedModel:
    op_params = {}
    for name, entry in spec["op_params"].items():
        cls = getattr(integer_ops, entry["class"])
        fields = dict(entry["fields"])
        prefix = f"op/{name}/"
        fields.update({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
        op_params[name] = cls(**fields)
    if spec["scheme"] not in SCHEMES:
        raise ValueError(f"unknown scheme {spec['scheme']!r}")
    return QuantizedModel(
        scheme=spec["scheme"],
        calibration=spec["calibration"],
        config=spec["config"],
        tensors={k: TensorQuant(**v) for k, v in spec["tensors"].items()},
        weights={k[len("weight/"):]: v for k, v in arrays.items() if k.startswith("weight/")},
        weight_scales={k: np.array(v, dtype=np.float64) for k, v in spec["weight_scales"].items()},
        biases={k[len("bias/"):]: v for k, v in arrays.items() if k.startswith("bias/")},
        op_params=op_params,
        normalization=Normalization(np.array(spec["normalization"]["mean"], np.float32),
                                    np.array(spec["normalization"]["std"], np.float32),
                                    bool(spec["normalization"].get("codes", False))),
        class_names=list(spec["class_names"]),
        meta=spec["meta"],
    )


def _check_shapes(model: QuantizedModel) -> None:
    widths = model.tensor_widths
    for op in model.ops:
        if op.kind != "fully_connected":
            continue
        w, b = model.weights.get(op.weight), model.biases.get(op.weight)
        if w is None or b is None:
            raise EdgeGRUError(f"artifact: weight or bias '{op.weight}' is missing")
        out_size, in_size = widths[op.output], widths[op.inputs[0]]
        if w.shape != (out_size, in_size) or w.dtype != np.int8 or b.shape != (out_size,):
            raise EdgeGRUError(f"artifact: '{op.weight}' has shape {w.shape} ({w.dtype}), bias {b.shape}; "
                               f"the config needs ({out_size}, {in_size}) int8")
