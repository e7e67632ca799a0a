"""Random espeak-ng variants: bred only from the parents, deterministic, and heard by espeak-ng."""

from __future__ import annotations

import numpy as np
import pytest

from edgegru.data import espeak_variants, speech_synth
from edgegru.data.espeak_variants import GROUPS, JITTER, TRACT, breed, random_variants, read_variant, system_data_dir
from edgegru.data.speech_synth import Utterance, speak
from edgegru.data.synth_kws import variant_groups
from edgegru.errors import EdgeGRUError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEGRU_CACHE", str(tmp_path))
    return tmp_path


def test_read_variant_keeps_known_settings_and_drops_comments(tmp_path):
    path = tmp_path / "v"
    path.write_text("language variant\nname Test\n// pitch 1 2\npitch 80 120 // low\n  formant 2  90 70 150\n"
                    "stressAdd 0 0 10\nbreath 75 75\nflutter\n")
    assert read_variant(path) == {"pitch": ["80", "120"], "formant 2": ["90", "70", "150"], "breath": ["75", "75"]}


def test_bred_settings_come_from_parents(tmp_path):
    parents = [{"pitch": ["80", "120"], "formant 1": ["100", "80", "100"], "voicing": ["20"], "breath": ["70"]},
               {"pitch": ["150", "200"], "formant 1": ["60", "100", "130"], "tone": ["100", "130", "800", "90"]}]
    rng = np.random.default_rng(0)
    seen = set()
    for i in range(40):
        lines = breed(parents, f"v{i}", rng).splitlines()
        assert lines[:2] == ["language variant", f"name v{i}"]
        settings = {" ".join(line.split()[:2]) if line.startswith("formant") else line.split()[0]: line.split()[-3:]
                    if line.startswith("formant") else line.split()[1:] for line in lines[2:]}
        assert set(settings) <= {key for group in GROUPS for key in group}
        if "voicing" in settings:  # whisper's settings travel together
            assert settings["breath"] == ["70"] and settings["voicing"] == ["20"]
        else:
            assert "breath" not in settings
        if "tone" in settings:
            assert settings["tone"] == parents[1]["tone"]  # not jittered
        frequency = int(settings["formant 1"][0])
        assert 60 * TRACT[0] * (1 - JITTER) - 1 <= frequency <= 100 * TRACT[1] * (1 + JITTER) + 1
        pitch = [int(v) for v in settings["pitch"]]
        assert any(all(abs(v - int(p)) <= JITTER * int(p) + 1 for v, p in zip(pitch, parent["pitch"])) for parent in parents)
        seen.add(tuple(settings["pitch"]))
    assert len(seen) > 30  # jittered: nearly every voice its own pitch


def test_random_variants_are_deterministic_and_spoken(cache):
    train = variant_groups()[0]["train"]
    data, names = random_variants(train, 3, 7)
    again, same = random_variants(train, 3, 7)
    assert (again, same) == (data, names) and len(names) == 3
    assert data.parent == cache and (data / "espeak-ng-data" / "phontab").is_file()
    files = sorted((data / "espeak-ng-data" / "voices" / "!v").iterdir())
    assert [f.name for f in files] == names  # only the bred variants: espeak-ng lists at most 349 voices
    system = system_data_dir()
    default = speak(Utterance("espeak-ng", "en", "seven", 175, 50))
    bred = [speak(Utterance("espeak-ng", f"en+{name}", "seven", 175, 50, str(data))) for name in names]
    assert all(len(word) > 1000 for word in bred)
    assert len({word.tobytes() for word in bred} | {default.tobytes()}) == 4  # each variant heard
    assert all(path.is_symlink() for path in (data / "espeak-ng-data").iterdir() if path.name != "voices")
    assert (data / "espeak-ng-data" / "phontab").resolve() == (system / "phontab").resolve()


def test_random_variants_errors(cache, monkeypatch):
    with pytest.raises(EdgeGRUError, match=r"1\.\.150, asked for 151"):
        random_variants(["whisper"], 151, 0)
    with pytest.raises(EdgeGRUError, match="no voice variant nobody"):
        random_variants(["whisper", "nobody"], 2, 0)
    monkeypatch.setattr(espeak_variants.subprocess, "run", lambda *a, **k: type("R", (), {"stdout": "espeak 0.1"})())
    with pytest.raises(EdgeGRUError, match="does not say where its voice variants are"):
        random_variants(["whisper"], 1, 0)
    monkeypatch.setattr(speech_synth.shutil, "which", lambda program: None)
    with pytest.raises(EdgeGRUError, match=r"'espeak-ng' is not installed .*make toolchain"):
        random_variants(["whisper"], 1, 0)


def test_an_interrupted_or_failed_mirror_leaves_nothing(cache, monkeypatch):
    real_mirror = espeak_variants._mirror

    def interrupted(system, data, texts):
        real_mirror(system, data, texts)
        raise KeyboardInterrupt

    monkeypatch.setattr(espeak_variants, "_mirror", interrupted)
    with pytest.raises(KeyboardInterrupt):
        random_variants(["whisper"], 1, 0)
    assert not list(cache.iterdir())

    def full(system, data, texts):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(espeak_variants, "_mirror", full)
    with pytest.raises(EdgeGRUError, match="cannot write the espeak-ng voice variants .*No space left"):
        random_variants(["whisper"], 1, 0)
    assert not list(cache.iterdir())
