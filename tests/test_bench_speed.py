"""`edgegru bench --batch --latency`: golden batch against torch float, per-step latency per backend."""

from __future__ import annotations

import re

from edgegru.stages.bench_stage import bench_run
from edgegru.stages.export_stage import export_run


def test_batch_and_latency_side_by_side(quantized_run):
    for fmt in ("tflite", "onnx"):
        export_run(quantized_run, "int8", fmt)
    (batch_title, batch), (latency_title, latency) = bench_run(quantized_run, ["batch", "latency"], ["int8"], [], steps=1,
                                                               latency_steps=40, progress=False)
    assert batch_title.startswith("batch") and latency_title.startswith("latency, int8")
    rows = {m[1]: (float(m[2]), float(m[3].replace(",", "")), float(m[4]))
            for m in re.finditer(r"^(torch float|golden int8) +([\d.]+) +([\d,]+) +([\d.]+)$", batch, re.M)}
    assert set(rows) == {"torch float", "golden int8"} and rows["torch float"][2] == 1.0
    ratio = rows["golden int8"][1] / rows["torch float"][1]  # steps per second
    assert abs(rows["golden int8"][2] - ratio) <= 0.001 + 0.001 * ratio
    measured = re.findall(r"^(golden \(Python\)|litert|tflite-runtime|tflm|onnxruntime|c-host) +([\d.]+) +([\d.]+) +([\d.]+)$",
                          latency, re.M)
    assert [m[0] for m in measured] == ["golden (Python)", "litert", "tflite-runtime", "tflm", "onnxruntime"]
    assert all(float(median) > 0 and float(p99) >= float(median) for _, median, p99, _ in measured)
    assert "c-host: skipped: no generated C sources" in latency  # the run has no `edgegru firmware` sources
