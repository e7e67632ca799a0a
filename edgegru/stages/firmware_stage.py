"""`edgegru firmware`: generate the C model of a run, build and run it on each target, and measure it.

The generated sources land in `runs/NAME/firmware/<scheme>/src/` (with a manifest naming the artifact
they were made from), each target's build and `firmware.json` in `runs/NAME/firmware/<scheme>/<target>/`.
Every test sequence is streamed through the program one step at a time (`stream_loop`, via a
`StepSession`) and every element of every step is compared with the golden model (`double` rounding,
the TFLite Micro arithmetic).  On emulated cores QEMU counts the instructions of each step exactly,
and of the mat-vec kernel alone; the time per step assumes one instruction per cycle.  When the test
recordings carry their audio (keyword spotting), the whole chain from audio to events runs too
(`firmware_chain`): its report is the `chain` entry of `firmware.json`.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from edgegru.artifact import load_artifact
from edgegru.atomic import write_json_atomic
from edgegru.checkpoint import load_checkpoint
from edgegru.data import load_dataset
from edgegru.errors import EdgeGRUError
from edgegru.golden import initial_states, quantize_features
from edgegru.quantize import QuantizedModel
from edgegru.stages.firmware_chain import CHAIN_CLOCK_MHZ, audio_recordings, chain_report, frontend_clips, python_chain
from edgegru.stages.run_layout import RunLayout, artifact_digest, read_json, tree_digest
from edgegru.stream_detect import DetectorConfig, DetectorParams, as_record, dataset_detector, golden_events, prepare_detector
from edgegru.stream_loop import stream
from edgegru.stream_metrics import Session, make_sessions
from export.verify import compare_with_golden, golden_trace, stream_backend, verification_streams
from firmware_sim.audio_frontend import FrontEnd, mfcc_q15_frontend
from firmware_sim.codegen.harness import DEFAULT_NAME, MARK_PIPELINE, write_sources
from firmware_sim.device.build import build
from firmware_sim.device.targets import TARGETS, Target, get_target, require_tool, require_toolchain
from firmware_sim.footprint import recurrent_matvec, step_footprint
from firmware_sim.step_session import MARKER_DEFINES, StepSession

DEFAULT_CLOCK_MHZ = 100.0
DEFAULT_SAMPLE_HZ = 25.0  # watch: 25 Hz
TARGET_NAMES = list(TARGETS)
CYCLE_MODEL = "1 instruction = 1 cycle (zero wait states)"


def available_targets(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """(targets whose tools are installed, {target: what is missing and how to get it} for the rest)."""
    usable, skipped = [], {}
    for name in names:
        target = get_target(name)
        try:
            require_toolchain(target)
            if target.emulated:
                require_tool("qemu-system-arm")
        except EdgeGRUError as missing:
            skipped[name] = f"{missing}; or run `make toolchain`"
        else:
            usable.append(name)
    return usable, skipped


def write_c_sources(layout: RunLayout, model: QuantizedModel, detector: DetectorParams | None = None) -> Path:
    """Generate the C model, kernels and stream harness (with `detector`: the event detector too) into
    `firmware/<scheme>/src/` as one swap: a failed generation leaves the previous sources as they were."""
    final = layout.c_sources_dir(model.scheme)
    final.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=".src-", dir=final.parent))
    try:
        write_sources(model, fresh, DEFAULT_NAME, detector=detector)
        write_json_atomic(fresh / "manifest.json", {"artifact_sha256": artifact_digest(layout, model.scheme),
                                                    "name": DEFAULT_NAME,
                                                    "detector": None if detector is None else as_record(detector)})
        old = final.with_name(f".old-{fresh.name}")
        if final.exists():
            final.rename(old)
        fresh.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    return final


def written_detector(layout: RunLayout, scheme: str) -> DetectorParams | None:
    """The detector compiled into the written sources, if any."""
    recorded = (read_json(layout.c_manifest(scheme)) or {}).get("detector")
    return None if recorded is None else DetectorParams(**recorded)


def written_sources(layout: RunLayout, scheme: str) -> list[Path]:
    """The .c files `edgegru firmware` wrote, after checking they were made from the current artifact."""
    directory = layout.c_sources_dir(scheme)
    command = f"`edgegru firmware {layout.root} --scheme {scheme}`"
    manifest = read_json(layout.c_manifest(scheme))
    if manifest is None:
        raise EdgeGRUError(f"no generated C sources in {directory}; run {command} first")
    if manifest.get("artifact_sha256") != artifact_digest(layout, scheme):
        raise EdgeGRUError(f"the C sources in {directory} were generated from another quantized model (stale); "
                           f"run {command} again")
    return sorted(directory.glob("*.c"))


@contextlib.contextmanager
def c_step_session(layout: RunLayout, model: QuantizedModel, target: Target | str, count_instructions: bool = False,
                   markers: str | None = None):
    """The written C sources built for `target` (into `firmware/<scheme>/<target>/`, or a subfolder named
    after `markers`, a define that moves the instruction-count window) and started."""
    target = get_target(target)
    out_dir = layout.firmware_dir(model.scheme) / target.name / (markers or "")
    defines = {**MARKER_DEFINES, **({markers: None} if markers else {})}
    exe = build(target, written_sources(layout, model.scheme), include_dirs=[layout.c_sources_dir(model.scheme)],
                out_dir=out_dir, defines=defines, name=DEFAULT_NAME)
    detector = written_detector(layout, model.scheme) is not None
    with StepSession(model, target, exe, count_instructions=count_instructions, detector=detector) as session:
        yield session, exe


def run_target(layout: RunLayout, model: QuantizedModel, target: Target, streams, trace, clock_mhz: float) -> dict:
    """Stream every sequence through the C model on `target`, compare with the golden trace, measure."""
    x_q, lengths, y = streams
    start = time.perf_counter()
    emulated = target.emulated
    with c_step_session(layout, model, target, count_instructions=emulated) as (session, exe):
        logits, states = stream_backend(model, session.step_function(), x_q, lengths, target.name, progress=True)
        result = session.close()
    report = {"target": target.name, "scheme": model.scheme, "variant": model.config["variant"],
              "hidden": model.config["hidden"], "sequences": len(lengths),
              **compare_with_golden(model, trace, logits, states, lengths, y)}
    if emulated:
        report.update(step_footprint(model, exe, result, int(lengths.sum())))
        matvec = recurrent_matvec(model, target, layout.firmware_dir(model.scheme) / target.name / "matvec")
        report.update({"matvec_shape": matvec["shape"],
                       "matvec_instructions_per_mac": matvec["optimized_instructions_per_mac"],
                       "clock_mhz": clock_mhz, "cycle_model": CYCLE_MODEL,
                       "microseconds_per_step": round(report["instructions_per_step_median"] / clock_mhz, 2)})
    report["seconds"] = round(time.perf_counter() - start, 2)
    return report


def python_events(model: QuantizedModel, params: DetectorParams, sessions: list[Session]) -> list[list[list]]:
    """The Python integer detector's events on the golden model's logits, every session streamed whole
    from the initial state (no state policy: what the device does)."""
    x_q = np.zeros((len(sessions), max(len(s.signal) for s in sessions), model.config["input_size"]),
                   dtype=model.tensors["x"].dtype)
    for i, session in enumerate(sessions):
        x_q[i, : len(session.signal)] = quantize_features(model, session.signal)
    events = golden_events(model, params, x_q, np.array([len(s.signal) for s in sessions]))
    return [[e.as_list(s.subject) for e in found] for s, found in zip(sessions, events)]


def device_events(layout: RunLayout, model: QuantizedModel, target: Target, sessions: list[Session],
                  markers: str | None = None) -> tuple[list[list[list]], list[int]]:
    """The C detector's events on the device's own logits, every session streamed whole, and the
    instruction count of every step's window (emulated targets)."""
    found = []
    with c_step_session(layout, model, target, count_instructions=target.emulated, markers=markers) as (session, _):
        for s in sessions:
            session.reset()
            events = []
            stream(session.step_function(), initial_states(model, 1), quantize_features(model, s.signal)[None],
                   np.array([len(s.signal)]),
                   lambda t, logits, active: events.extend(e for e in session.last_events if e is not None))
            last = session.finish()
            found.append([e.as_list(s.subject) for e in events + ([last] if last is not None else [])])
        result = session.close()
    return found, list(result.instruction_counts)


def detector_report(layout: RunLayout, model: QuantizedModel, target: Target, sessions: list[Session],
                    expected: list[list[list]], clock_mhz: float, sample_hz: float) -> dict:
    """The C detector against the Python one over every session, and on emulated cores the cost of the
    whole pipeline (step + detector) per step and its duty cycle at `sample_hz` and `clock_mhz`."""
    events, counts = device_events(layout, model, target, sessions, markers=MARK_PIPELINE if target.emulated else None)
    report = {"detector_sessions": len(sessions), "detector_events": sum(map(len, events)),
              "detector_events_match": events == expected}
    if target.emulated:
        pipeline = int(np.median(counts))
        report.update({"pipeline_instructions_per_step_median": pipeline, "sample_hz": sample_hz,
                       "duty_cycle": round(pipeline * sample_hz / (clock_mhz * 1e6), 5)})
    return report


def firmware_run(run_dir: Path, scheme: str, targets: list[str], clock_mhz: float = DEFAULT_CLOCK_MHZ,
                 max_sequences: int | None = None, reuse: bool = False, detector: DetectorConfig | dict | None = None,
                 sample_hz: float = DEFAULT_SAMPLE_HZ, chain_clock_mhz: float = CHAIN_CLOCK_MHZ,
                 frontend: FrontEnd | None = None) -> list[dict]:
    """Generate the C model, run it on every target over the test split; one firmware.json per target.

    With `reuse`, sources already generated from the current artifact are kept, and a target whose
    firmware.json is for the same sources, clock and number of sequences is not run again.  Test
    recordings with audio also run the audio chain through `frontend` (default: the MFCC q15 front end)
    with `detector` (a whole DetectorConfig, or settings over the dataset's defaults:
    `stream_detect.dataset_detector`), its duty cycle at `chain_clock_mhz`.  `detector` None: the
    step program has no detector (the chain has the dataset's).
    """
    layout = RunLayout(Path(run_dir))
    resolved = [get_target(name) for name in targets]  # refuses an unknown target before any work
    model = load_artifact(layout.quant_dir(scheme))
    dataset = load_dataset(load_checkpoint(layout.root).dataset)
    settled = dataset_detector(dataset, detector)  # the chain's detector, and the step program's if asked for
    params = None if detector is None else prepare_detector(settled, model.tensors["logits"].scale)
    try:
        written_sources(layout, scheme)
        fresh = not reuse or written_detector(layout, scheme) != params
    except EdgeGRUError:
        fresh = True
    if fresh:
        write_c_sources(layout, model, params)
    sources = tree_digest(layout.c_sources_dir(scheme))
    streams = verification_streams(model, dataset.test, max_sequences)
    sessions = make_sessions(dataset.recordings.get("test", []))
    if params is not None and not sessions:
        raise EdgeGRUError(f"--detector needs whole recordings to stream; dataset '{dataset.name}' has none")
    expected = python_events(model, params, sessions) if params is not None else None
    audio = audio_recordings(dataset.recordings.get("test", []))
    chain = (_chain_inputs(model, audio, settled, frontend)
             if audio and scheme == "int8" else None)
    trace = None
    reports = []
    for target in resolved:
        record = layout.firmware_dir(scheme) / target.name / "firmware.json"
        earlier = read_json(record)
        if (reuse and earlier and earlier.get("sources_sha256") == sources and earlier.get("clock_mhz", clock_mhz) == clock_mhz
                and earlier.get("sequences") == len(streams[1])):
            reports.append({**earlier, "dataset": dataset.name, "reused": True})
            continue
        trace = trace or golden_trace(model, *streams[:2], "double")
        report = {"dataset": dataset.name, **run_target(layout, model, target, streams, trace, clock_mhz),
                  "sources_sha256": sources, "detector": None if params is None else as_record(params)}
        if params is not None:
            report.update(detector_report(layout, model, target, sessions, expected, clock_mhz, sample_hz))
        if chain is not None:
            report["chain"] = chain_report(model, target, layout.firmware_dir(scheme) / target.name / "chain",
                                           *chain, clock_mhz=chain_clock_mhz)
            if frontend is None and dataset.test_audio is not None:  # the MFCC front end on every test clip
                report["chain"].update(frontend_clips(target, dataset.test_audio, dataset.test.x.astype(np.int8)))
        elif audio:
            report["chain"] = {"skipped": "the audio chain feeds the front end's int8 codes: --scheme int8 only"}
        write_json_atomic(record, report)
        reports.append({**report, "reused": False})
    return reports


def _chain_inputs(model: QuantizedModel, recordings: list, detector: DetectorConfig,
                  frontend: FrontEnd | None) -> tuple:
    """(detector params, front end, recordings, Python's chain): what `chain_report` takes after the target."""
    frontend = frontend or mfcc_q15_frontend()
    params = prepare_detector(detector, model.tensors["logits"].scale)
    return params, frontend, recordings, python_chain(model, params, frontend, recordings)
