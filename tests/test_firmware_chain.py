"""The keyword-spotting chain on the device: audio hops -> front end -> int8 codes -> GRU step -> detector
-> events, against Python, with a stub front end (the same integer function of the window in C and
Python) standing in for the MFCC one."""

import json
from dataclasses import replace

import numpy as np
import pytest

from edgegru.artifact import save_artifact
from edgegru.calibrate import observe
from edgegru.checkpoint import save_checkpoint
from edgegru.data.dataset import Dataset, Recording, Split
from edgegru.errors import EdgeGRUError
from edgegru.quantize import quantize_model
from edgegru.stages import firmware_stage
from edgegru.stages.firmware_chain import CHAIN_CLOCK_MHZ, python_chain
from edgegru.stages.firmware_stage import firmware_run
from edgegru.stages.run_layout import RunLayout
from edgegru.stream_detect import DetectorConfig, prepare_detector
from edgegru.train import TrainConfig, train
from edgegru.data.kws_frontend import HOP_SECONDS
from firmware_sim.audio_frontend import CODES, HOP, WINDOW, FrontEnd, whole_hops
from firmware_sim.codegen.harness import MARK_DETECTOR, reset_record, steps_record
from firmware_sim.device.execute import run
from firmware_sim.step_session import StepSession, build_chain, build_model

STUB_HEADER = """#ifndef STUB_FRONTEND_H
#define STUB_FRONTEND_H
#include <stdint.h>
int edgegru_mfcc_q15_init(void);
void edgegru_mfcc_q15_frame(const int16_t window[480], int8_t codes[10]);
#endif
"""
# Code k: the summed magnitude of the k-th 48 samples of the window, >> 12, less 64, saturated to int8.
STUB_SOURCE = """#include "stub_frontend.h"

int edgegru_mfcc_q15_init(void)
{
    return 0;
}

void edgegru_mfcc_q15_frame(const int16_t window[480], int8_t codes[10])
{
    int k, i;
    for (k = 0; k < 10; ++k) {
        int32_t energy = 0, code;
        for (i = 0; i < 48; ++i) {
            int32_t v = window[48 * k + i];
            energy += v < 0 ? -v : v;
        }
        code = (energy >> 12) - 64;
        codes[k] = (int8_t)(code > 127 ? 127 : code < -128 ? -128 : code);
    }
}
"""


def stub_codes(audio: np.ndarray) -> np.ndarray:
    """The stub in Python: int16 audio [S] -> int8 codes [frames, 10], frame f over [HOP f, HOP f + WINDOW)."""
    frames = (len(audio) - WINDOW) // HOP + 1 if len(audio) >= WINDOW else 0
    index = HOP * np.arange(frames)[:, None] + np.arange(WINDOW)[None, :]
    energy = np.abs(audio.astype(np.int32)[index]).reshape(frames, CODES, WINDOW // CODES).sum(axis=2)
    return np.clip((energy >> 12) - 64, -128, 127).astype(np.int8)


@pytest.fixture(scope="module")
def stub_frontend(tmp_path_factory) -> FrontEnd:
    directory = tmp_path_factory.mktemp("stub_frontend")
    (directory / "stub_frontend.h").write_text(STUB_HEADER)
    (directory / "stub_frontend.c").write_text(STUB_SOURCE)
    return FrontEnd("stub_frontend.h", (directory / "stub_frontend.c",), stub_codes, (directory,))


def noise_audio(rng, loudness: list[tuple[int, int]]) -> np.ndarray:
    """int16 noise, (hops, peak amplitude) per segment."""
    return np.concatenate([rng.integers(-peak, peak + 1, hops * HOP) for hops, peak in loudness]).astype(np.int16)


@pytest.fixture(scope="module")
def kws_like():
    """A 10-code, 2-class (quiet, loud) dataset made by the stub front end, with two test streams whose
    audio alternates quiet and loud, and a tiny int8 model trained on it for a few steps."""
    rng = np.random.default_rng(7)

    def split(n):
        y = rng.integers(0, 2, n)
        x = np.stack([stub_codes(noise_audio(rng, [(17, 600 if label == 0 else 20000)])) for label in y])
        return Split(x.astype(np.float32), np.full(n, x.shape[1]), y)
    streams = [noise_audio(rng, [(30, 500), (40, 20000), (35, 400), (45, 25000), (20, 300)]) + np.int16(0),
               np.concatenate([noise_audio(rng, [(25, 30000), (50, 700), (30, 18000)]), np.zeros(200, np.int16)])]
    recordings = [Recording(stub_codes(a).astype(np.float32), 0, s, None, a) for s, a in enumerate(streams)]
    dataset = Dataset("kws-like", ["quiet", "loud"], split(64), split(16), split(16), {"test": recordings})
    checkpoint, _ = train(dataset, TrainConfig(hidden=8, steps=40), progress=False)
    model = quantize_model(checkpoint, observe(checkpoint.model, dataset.train, checkpoint.normalization), "int8")
    params = prepare_detector(DetectorConfig(window=4, threshold=0.0, min_duration=4, holdoff=4),
                              model.tensors["logits"].scale)
    return dataset, checkpoint, model, params


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_a_chain_session_gives_the_python_codes_logits_and_events(kws_like, stub_frontend, tmp_path, target):
    dataset, _, model, params = kws_like
    recording = dataset.recordings["test"][0]
    expected = python_chain(model, params, stub_frontend, [recording])[0]
    assert len(expected["events"]) >= 2
    hops = whole_hops(recording.audio)
    with StepSession.build(model, target, tmp_path, detector=params, frontend=stub_frontend) as session:
        first = session.hops(hops[:1])
        outputs = first + session.hops(hops[1:])
        last = session.finish()
        session.reset()  # forgets the held hop: the next hop completes no frame
        again = session.hops(hops[:2])
        session.close()
    assert first[0].codes is None and first[0].event is None
    frames = outputs[1:]
    assert np.array_equal(np.stack([o.codes for o in frames]), expected["codes"])
    assert np.array_equal(np.stack([o.logits for o in frames]), np.stack(expected["logits"]))
    assert np.array_equal(np.stack([o.states[0] for o in frames]), np.stack(expected["states"][0]))
    assert [o.event for o in frames if o.event] + ([last] if last else []) == expected["events"]
    assert again[0].codes is None and np.array_equal(again[1].codes, expected["codes"][0])


def test_a_session_without_a_front_end_refuses_hops(kws_like, tmp_path):
    _, _, model, params = kws_like
    with StepSession.build(model, "host", tmp_path, detector=params) as session, \
            pytest.raises(EdgeGRUError, match="front end"):
        session.hops(np.zeros((1, HOP), np.int16))


@pytest.fixture(scope="module")
def kws_run(kws_like, tmp_path_factory):
    dataset, checkpoint, model, _ = kws_like
    layout = RunLayout(tmp_path_factory.mktemp("run") / "kws-like")
    save_checkpoint(layout.checkpoint, checkpoint)
    save_artifact(layout.quant_dir("int8"), model)
    return layout


def test_the_firmware_stage_runs_the_chain_on_host_and_m4(kws_like, kws_run, stub_frontend, monkeypatch):
    dataset, _, _, _ = kws_like
    monkeypatch.setattr(firmware_stage, "load_dataset", lambda name: dataset)
    detector = DetectorConfig(window=4, threshold=0.0, min_duration=4, holdoff=4)
    runs = [firmware_run(kws_run.root, "int8", ["host", "cortex-m4"], detector=detector, frontend=stub_frontend)
            for _ in range(2)]
    for reports in runs:
        for report in reports:
            chain = report["chain"]
            assert chain["frontend_mismatches"] == 0 and chain["mismatches"] == 0 and chain["event_mismatches"] == 0
            assert chain["frames"] == sum(len(whole_hops(r.audio)) - 1 for r in dataset.recordings["test"])
            assert chain["frontend_elements"] == CODES * chain["frames"] and chain["events"] >= 4
    host, m4 = runs[0]
    assert "instructions_per_hop" not in host["chain"]
    per_hop = m4["chain"]["instructions_per_hop"]
    assert all(count > 0 for count in per_hop.values())
    assert per_hop["total"] > per_hop["frontend"] + per_hop["gru"] + per_hop["detector"]
    assert per_hop == runs[1][1]["chain"]["instructions_per_hop"]
    assert m4["chain"]["clock_mhz"] == CHAIN_CLOCK_MHZ
    assert m4["chain"]["duty_cycle"] == pytest.approx(per_hop["total"] / (CHAIN_CLOCK_MHZ * 1e6 * HOP_SECONDS),
                                                      rel=1e-4)
    assert m4["chain"]["flash_bytes"] > model_bytes(kws_like) and m4["chain"]["stack_bytes"] > 0
    written = json.loads((kws_run.firmware_dir("int8") / "cortex-m4" / "firmware.json").read_text())
    assert written["chain"] == m4["chain"]


def model_bytes(kws_like) -> int:
    return kws_like[2].weight_bytes()


def test_a_run_without_audio_has_no_chain(kws_like, kws_run, monkeypatch):
    dataset, _, _, _ = kws_like
    silent = [Recording(r.signal, r.label, r.subject) for r in dataset.recordings["test"]]
    monkeypatch.setattr(firmware_stage, "load_dataset", lambda name: replace(dataset, recordings={"test": silent}))
    report = firmware_run(kws_run.root, "int8", ["host"], max_sequences=2)[0]
    assert "chain" not in report and report["mismatches"] == 0


@pytest.mark.parametrize("window", [None, MARK_DETECTOR])
def test_the_chain_counts_the_step_and_the_push_as_the_feature_program_does(kws_like, stub_frontend, tmp_path,
                                                                            window):
    """The same codes as feature records through the model-and-detector program and as audio through the
    chain: the step's (and the push's) windows count the same instructions, frame by frame."""
    dataset, _, model, params = kws_like
    hops = whole_hops(dataset.recordings["test"][1].audio)
    codes = stub_codes(hops.reshape(-1))
    defines = {window: None} if window else None
    plain = build_model(model, "cortex-m4", tmp_path / "plain", defines=defines, detector=params)
    features = run("cortex-m4", plain, reset_record() + steps_record(codes), count_instructions=True)
    chain = build_chain(model, "cortex-m4", tmp_path / "chain", params, stub_frontend, defines=defines)
    with StepSession(model, "cortex-m4", chain, count_instructions=True, audio=True) as session:
        session.hops(hops)
        counts = session.close().instruction_counts
    assert len(counts) == len(codes) and counts == features.instruction_counts
