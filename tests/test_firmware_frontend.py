"""The front end in firmware: CMSIS-DSP's q15 MFCC from its sources + our glue, built for the host and
the emulated Cortex-M4 and M55, gives the Python reference's int16 MFCC and int8 codes bit for bit
(batch and hop-by-hop stream), and its instructions per frame are counted exactly."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgegru.data.mfcc_q15 import MfccQ15
from edgegru.errors import EdgeGRUError
from firmware_sim.frontend import mfcc_firmware
from firmware_sim.frontend.mfcc_firmware import instructions_per_frame, run_frontend
from tests.test_mfcc_q15 import espeak_clip, synthetic_clips

needs_source = pytest.mark.skipif(
    not (mfcc_firmware.CMSIS_DSP_ROOT / "Include" / "arm_math.h").is_file(), reason="run `make cmsis-dsp`"
)
needs_arm = pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="no qemu-system-arm")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    speech = espeak_clip("left", tmp_path_factory.mktemp("speech"))
    return np.concatenate([synthetic_clips(3), speech[None]])


@pytest.fixture(scope="module")
def reference(clips):
    front_end = MfccQ15()
    return front_end.mfcc(clips), front_end.features(clips)


@needs_source
@pytest.mark.parametrize("target", ["host", pytest.param("cortex-m4", marks=needs_arm),
                                    pytest.param("cortex-m55", marks=needs_arm)])  # fmt: skip
def test_bit_exact_with_the_python_reference(target, clips, reference):
    mfcc, codes, _ = run_frontend(target, clips)
    assert (mfcc != reference[0]).sum() == 0
    assert (codes != reference[1]).sum() == 0


@needs_source
@needs_arm
def test_instructions_per_frame_are_exact_and_positive(clips):
    for target in ("cortex-m4", "cortex-m55"):
        first = instructions_per_frame(target, clips[:2])
        assert len(first) == 2 * 49 and min(first) > 0
        assert instructions_per_frame(target, clips[:2]) == first


def test_missing_sources_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setattr(mfcc_firmware, "CMSIS_DSP_ROOT", tmp_path)
    with pytest.raises(EdgeGRUError, match="make cmsis-dsp"):
        mfcc_firmware.cmsis_dsp_root()


def test_counts_need_an_emulated_target():
    with pytest.raises(EdgeGRUError, match="emulated"):
        instructions_per_frame("host", np.zeros((1, 16000), np.int16))
