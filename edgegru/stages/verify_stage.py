"""`edgegru verify`: the files a user deploys, run in every backend, against the golden model.

TFLite backends load `export/<scheme>/model.tflite`, ONNX backends `export/<scheme>/model.onnx`,
and the C backends build the sources `edgegru firmware` wrote into `firmware/<scheme>/src/`; a
missing or stale file is an error naming the command that writes it.  `verify/<scheme>.json` keeps
every backend's latest result: verifying one backend leaves the others' records as they were,
unless the quantized model changed since (then they no longer describe it and are dropped).
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from edgegru.artifact import load_artifact
from edgegru.atomic import write_json_atomic
from edgegru.checkpoint import load_checkpoint
from edgegru.data import load_dataset
from edgegru.quantize import QuantizedModel
from edgegru.stages.export_stage import deployed_model
from edgegru.stages.firmware_stage import c_step_session
from edgegru.stages.run_layout import RunLayout, artifact_digest, read_json, tree_digest
from export.onnx_runtimes import load_onnx_runner
from export.tflite_runtimes import load_runner
from export.verify import (Backend, get_backends, golden_accuracy, golden_trace, onnx_step, tflite_step,
                           verification_streams, verify_backend)


@contextlib.contextmanager
def backend_step(layout: RunLayout, model: QuantizedModel, backend: Backend):
    """The step function of a backend running the deployed file."""
    if backend.deploys == "tflite":
        yield tflite_step(model, load_runner(backend.runtime, deployed_model(layout.root, model.scheme, "tflite")))
    elif backend.deploys == "onnx":
        yield onnx_step(model, load_onnx_runner(backend.runtime, deployed_model(layout.root, model.scheme, "onnx")))
    else:
        with c_step_session(layout, model, backend.runtime) as (session, _):
            yield session.step_function()
            session.close()


def deployed_digest(layout: RunLayout, scheme: str, backend: Backend) -> str:
    """SHA-256 of what the backend runs: the exported file, or every generated C source."""
    if backend.deploys == "c":
        return tree_digest(layout.c_sources_dir(scheme))
    return hashlib.sha256(deployed_model(layout.root, scheme, backend.deploys)).hexdigest()


def verify_run(run_dir: Path, scheme: str, backend_names: list[str], max_sequences: int | None = None,
               progress: bool = True, reuse: bool = False) -> dict:
    """Verify the backends on the run's test split; merge their results into `verify/<scheme>.json`.

    With `reuse`, a backend whose recorded result is for the same artifact, the same deployed bytes
    and the same number of sequences is not run again.  Returns this call's report:
    {dataset, scheme, sequences, golden_accuracy, backends: {name: result}}.
    """
    layout = RunLayout(Path(run_dir))
    backends = get_backends(backend_names)
    model = load_artifact(layout.quant_dir(scheme))
    artifact = artifact_digest(layout, scheme)
    dataset = load_dataset(load_checkpoint(layout.root).dataset)
    x_q, lengths, y = verification_streams(model, dataset.test, max_sequences)
    record = read_json(layout.verify_json(scheme)) or {}
    kept = record.get("backends", {}) if record.get("artifact_sha256") == artifact else {}
    traces, results = {}, {}
    for backend in backends:
        deployed = deployed_digest(layout, scheme, backend)
        earlier = kept.get(backend.name)
        if reuse and earlier and earlier.get("deployed_sha256") == deployed and earlier.get("sequences") == len(lengths):
            results[backend.name] = {**earlier, "reused": True}
            continue
        if backend.rounding not in traces:
            traces[backend.rounding] = golden_trace(model, x_q, lengths, backend.rounding)
        with backend_step(layout, model, backend) as step:
            result = verify_backend(model, backend, step, x_q, lengths, y, traces[backend.rounding], progress)
        results[backend.name] = {**result, "sequences": len(lengths), "deployed_sha256": deployed,
                                 "golden_accuracy": golden_accuracy(traces, lengths, y)[backend.rounding],
                                 "reused": False}
    write_json_atomic(layout.verify_json(scheme), {"dataset": dataset.name, "scheme": scheme,
                                                   "artifact_sha256": artifact, "backends": {**kept, **results}})
    return {"dataset": dataset.name, "scheme": scheme, "sequences": len(lengths), "backends": results}


def not_bit_exact(report: dict) -> list[str]:
    """The backends of a report that must be bit-exact and are not."""
    return [r["backend"] for r in report["backends"].values() if r["exact_required"] and not r["bit_exact"]]
