"""The keyword-spotting chain in `edgegru firmware`: audio hops in, events out, on every target, against
Python.

For a dataset whose test recordings carry their `audio` (int16, 16 kHz), every recording is streamed
hop by hop (`audio_frontend.HOP` samples, whole hops only) through the generated chain program
(`codegen.audio_harness`: front end -> int8 codes -> GRU step -> detector push), from a reset to a finish.
Python computes the same chain: the front end's reference codes over the same samples, the golden model
on those codes (x_q == codes, as the KWS datasets define the model's input) and the integer detector
on its logits.  Compared: every code element (`frontend_mismatches`), every logit and state element
(`mismatches`), and the events (`event_mismatches`: events in one list and not the other).

On emulated cores the program is built once per instruction-count window (`audio_harness.PART_WINDOWS`)
and QEMU counts, per hop that completes a frame, the front end, the GRU step, the detector push and the
whole hop (holding the hop, the three parts and the glue); `duty_cycle` is the whole hop's median over
one hop's time at `clock_mhz`, one instruction per cycle.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from edgegru.data.dataset import Recording
from edgegru.data.kws_frontend import HOP, HOP_SECONDS, frame_count
from edgegru.errors import EdgeGRUError
from edgegru.quantize import QuantizedModel
from edgegru.stream_detect import DetectorParams, as_record, golden_events
from firmware_sim.audio_frontend import FrontEnd, whole_hops
from firmware_sim.codegen.audio_harness import PART_WINDOWS
from firmware_sim.device.sizes import sizes
from firmware_sim.device.targets import Target
from firmware_sim.frontend.mfcc_firmware import run_frontend
from firmware_sim.step_session import StepSession, build_chain

CLIP_BATCH = 60  # clips per run of the front end's test program
CHAIN_CLOCK_MHZ = 64.0  # the share of a 64 MHz Cortex-M4 the chain takes
CYCLE_MODEL = "1 instruction = 1 cycle (zero wait states)"
# The counts of a chain report that must be 0 for the device to equal Python (the first three per build).
CHAIN_MISMATCHES = ("frontend_mismatches", "mismatches", "event_mismatches", "frontend_clip_mismatches")


def audio_recordings(recordings: list[Recording]) -> list[Recording]:
    """The recordings that carry their audio."""
    return [r for r in recordings if r.audio is not None]


def python_chain(model: QuantizedModel, params: DetectorParams, frontend: FrontEnd,
                 recordings: list[Recording]) -> list[dict]:
    """Per recording, what the chain must give: {"codes" int8 [T, CODES], "logits" [T, C], "states"
    [[T, H] per layer], "events" [Event...] (the finish's last)}, over its whole hops."""
    codes = []
    for recording in recordings:
        hops = whole_hops(recording.audio)
        frames = np.asarray(frontend.reference(hops.reshape(-1)))
        if frames.dtype != np.int8 or len(frames) != frame_count(len(hops) * HOP):
            raise EdgeGRUError(f"the front end's reference gave {frames.dtype} {list(frames.shape)} for "
                               f"{len(hops)} hops, not int8 [{frame_count(len(hops) * HOP)}, codes]")
        codes.append(frames)
    lengths = np.array([len(c) for c in codes])
    x_q = np.zeros((len(codes), max(lengths.max(initial=0), 1), model.config["input_size"]), dtype=np.int8)
    for i, c in enumerate(codes):
        x_q[i, : len(c)] = c
    expected = [{"codes": c, "logits": [], "states": [[] for _ in model.states]} for c in codes]

    def keep(i, tensors):
        expected[i]["logits"].append(tensors["logits"][i])
        for k, (_, h_out) in enumerate(model.states):
            expected[i]["states"][k].append(tensors[h_out][i])

    for item, events in zip(expected, golden_events(model, params, x_q, lengths, keep)):
        item["events"] = events
    return expected


def device_chain(exe: Path, model: QuantizedModel, target: Target, recordings: list[Recording]
                 ) -> tuple[list[dict], list[bool], list[int], int | None]:
    """Every recording through the chain program `exe`: per recording {"codes", "logits", "states",
    "events"} of the hops that completed a frame, whether each hop did (all recordings in order), the
    instruction count of every window, and the stack peak (emulated cores)."""
    found, framed = [], []
    with StepSession(model, target, exe, count_instructions=target.emulated, audio=True) as session:
        for recording in recordings:
            session.reset()
            hops = whole_hops(recording.audio)
            outputs = session.hops(hops) if len(hops) else []
            frames = [o for o in outputs if o.codes is not None]
            framed += [o.codes is not None for o in outputs]
            last = session.finish()
            found.append({"codes": np.array([o.codes for o in frames], dtype=np.int8).reshape(len(frames), -1),
                          "logits": [o.logits for o in frames],
                          "states": [[o.states[k] for o in frames] for k in range(len(model.states))],
                          "events": [o.event for o in frames if o.event is not None] + ([last] if last else [])})
        result = session.close()
    return found, framed, list(result.instruction_counts), result.stack_peak_bytes


def frontend_clips(target: Target, audio: np.ndarray, codes: np.ndarray, batch: int = CLIP_BATCH) -> dict:
    """The MFCC q15 front end alone on `target` over every clip of `audio` (int16 [N, S]) against the
    Python reference's `codes` [N, T, CODES] (the test split's features)."""
    differing = 0
    for first in range(0, len(audio), batch):
        _, device, _ = run_frontend(target.name, audio[first: first + batch])
        differing += int((device != codes[first: first + batch]).sum())
    return {"frontend_clips": len(audio), "frontend_clip_codes": int(codes.size),
            "frontend_clip_mismatches": differing}


def compare_chain(expected: list[dict], found: list[dict]) -> dict:
    """Codes, logits and states element by element, events as lists (module doc)."""
    report = {"frames": 0, "frontend_elements": 0, "frontend_mismatches": 0, "elements": 0, "mismatches": 0,
              "events": 0, "python_events": 0, "event_mismatches": 0}
    for want, got in zip(expected, found):
        if len(got["codes"]) != len(want["codes"]):
            raise EdgeGRUError(f"the chain completed {len(got['codes'])} frames where Python has {len(want['codes'])}")
        report["frames"] += len(want["codes"])
        report["frontend_elements"] += want["codes"].size
        report["frontend_mismatches"] += int((got["codes"] != want["codes"]).sum())
        for mine, theirs in [(got["logits"], want["logits"]), *zip(got["states"], want["states"])]:
            if len(theirs):
                report["elements"] += np.asarray(theirs).size
                report["mismatches"] += int((np.asarray(mine) != np.asarray(theirs)).sum())
        report["events"] += len(got["events"])
        report["python_events"] += len(want["events"])
        device, python = Counter(got["events"]), Counter(want["events"])
        report["event_mismatches"] += sum(((device - python) + (python - device)).values())
    return report


def chain_report(model: QuantizedModel, target: Target, out_dir: Path, params: DetectorParams, frontend: FrontEnd,
                 recordings: list[Recording], expected: list[dict], clock_mhz: float = CHAIN_CLOCK_MHZ) -> dict:
    """The chain on `target` (built under `out_dir`) against `expected` (`python_chain`), and on emulated
    cores its instructions per hop by part, duty cycle at `clock_mhz`, flash and RAM (module doc)."""
    windows = PART_WINDOWS if target.emulated else {"gru": None}
    counts, exes, stacks, report = {}, {}, {}, None
    for part, window in windows.items():
        exes[part] = build_chain(model, target, out_dir / part, params, frontend,
                                 defines={window: None} if window else None)
        found, framed, counts[part], stacks[part] = device_chain(exes[part], model, target, recordings)
        if report is None:
            report = {"recordings": len(recordings), "hops": len(framed), **compare_chain(expected, found),
                      "detector": as_record(params)}
            first = found
        elif not _same(compare_chain(first, found)):
            raise EdgeGRUError(f"the chain on {target.name} answered differently when built to count '{part}'")
    if not target.emulated:
        return report
    framed = np.array(framed, dtype=bool)
    counts["total"] = np.array(counts["total"])[framed] if len(counts["total"]) == len(framed) else []
    for part, values in counts.items():
        if len(values) != framed.sum():
            raise EdgeGRUError(f"{len(values)} '{part}' instruction counts for {int(framed.sum())} frames")
    total = int(np.median(counts["total"]))
    section = sizes(exes["total"])
    report.update({
        "instructions_per_hop": {part: int(np.median(values)) for part, values in counts.items()},
        "instructions_per_hop_max": {part: int(np.max(values)) for part, values in counts.items()},
        "clock_mhz": clock_mhz, "hop_seconds": HOP_SECONDS, "cycle_model": CYCLE_MODEL,
        "duty_cycle": round(total / (clock_mhz * 1e6 * HOP_SECONDS), 6),
        "flash_bytes": section["flash"], "ram_bytes_static": section["ram"], "stack_bytes": stacks["total"],
    })
    return report


def _same(comparison: dict) -> bool:
    return not any(comparison.get(key) for key in CHAIN_MISMATCHES)
