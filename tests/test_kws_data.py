"""Keyword-spotting audio: WAV reading, noise and mixing, synth-kws (small size), the Speech Commands loader."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from edgegru.data import kws_clips, speech_synth, synth_kws
from edgegru.data.kws_clips import COMMANDS, SILENCE_SPEAKER, SPEECH_COMMANDS_WORDS, save_clips
from edgegru.data.kws_frontend import CLIP_SAMPLES, SAMPLE_RATE
from edgegru.data.kws_noise import NOISE_DBFS, NOISE_KINDS, NOISE_SECONDS_PER_KIND, dbfs, noise_bed, place_word
from edgegru.data.speech_commands import load_speech_commands
from edgegru.data.kws import CODES_PER_UNIT, kws_dataset
from edgegru.data.synth_kws import SIZES, espeak_voices, load_synth_kws
from edgegru.data.wav_io import read_wav, write_wav
from edgegru.errors import EdgeGRUError


def sine(freq: float, rate: int, seconds: float, amplitude: float = 10000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


# --- WAV files ---


def test_wav_roundtrip_and_formats(tmp_path):
    x = sine(440, SAMPLE_RATE, 0.1)
    write_wav(tmp_path / "a.wav", x, SAMPLE_RATE)
    assert np.array_equal(read_wav(tmp_path / "a.wav"), x)
    wavfile.write(tmp_path / "u8.wav", SAMPLE_RATE, np.array([0, 128, 255], np.uint8))
    assert read_wav(tmp_path / "u8.wav").tolist() == [-32768, 0, 32512]
    wavfile.write(tmp_path / "i32.wav", SAMPLE_RATE, np.array([-(2**31), 2**16 * 1000, 2**31 - 1], np.int32))
    assert read_wav(tmp_path / "i32.wav").tolist() == [-32768, 1000, 32767]
    wavfile.write(tmp_path / "f32.wav", SAMPLE_RATE, np.array([-1.0, 0.5, 1.5], np.float32))
    assert read_wav(tmp_path / "f32.wav").tolist() == [-32768, 16384, 32767]


def test_wav_at_another_rate_keeps_its_frequency(tmp_path):
    write_wav(tmp_path / "8k.wav", sine(440, 8000, 1.0), 8000)
    x = read_wav(tmp_path / "8k.wav", rate=SAMPLE_RATE)
    assert len(x) == SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64)))
    assert np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[np.argmax(spectrum)] == pytest.approx(440, abs=1)
    assert np.std(x[1000:-1000]) == pytest.approx(10000 / np.sqrt(2), rel=0.02)  # level kept


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: wavfile.write(p, SAMPLE_RATE, np.zeros((100, 2), np.int16)), "2 channels"),
        (lambda p: wavfile.write(p, SAMPLE_RATE, np.zeros(0, np.int16)), "no samples"),
        (lambda p: p.write_bytes(b"not a wav file at all"), "not a WAV file"),
        (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00"), "corrupt"),
        (lambda p: wavfile.write(p, SAMPLE_RATE, np.zeros(10, np.float64)), "64-bit float"),
    ],
    ids=["stereo", "empty", "not-wav", "truncated", "float64"],
)
def test_wav_errors_are_one_clear_line(tmp_path, make, message):
    make(tmp_path / "bad.wav")
    with pytest.raises(EdgeGRUError, match=message) as error:
        read_wav(tmp_path / "bad.wav")
    assert "\n" not in str(error.value)
    with pytest.raises(EdgeGRUError, match="cannot read"):
        read_wav(tmp_path / "absent.wav")


# --- noise and mixing ---


def test_place_word_achieves_the_snr():
    rng = np.random.default_rng(1)
    bed = noise_bed(rng, [sine(300, SAMPLE_RATE, 0.3)])
    word, offset = sine(700, SAMPLE_RATE, 0.4, 3000.0), 5000
    for kind in range(len(NOISE_KINDS)):
        noise = bed[kind * NOISE_SECONDS_PER_KIND * SAMPLE_RATE :][:CLIP_SAMPLES]
        for snr in (5.0, 12.0, 20.0):
            clean = place_word(word, offset, -20.0, noise, None).astype(np.float64)
            noisy = place_word(word, offset, -20.0, noise, snr).astype(np.float64)
            span = slice(offset, offset + len(word))
            measured = 10 * np.log10(np.mean(clean[span] ** 2) / np.mean((noisy - clean)[span] ** 2))
            assert measured == pytest.approx(snr, abs=0.1), NOISE_KINDS[kind]
            assert dbfs(clean[span]) == pytest.approx(-20.0, abs=0.05)
            assert not clean[: offset - 1].any() and not clean[span.stop + 1 :].any()


def test_noise_bed_kinds_are_at_their_level():
    bed = noise_bed(np.random.default_rng(2), [sine(300, SAMPLE_RATE, 0.3)])
    assert bed.dtype == np.int16 and len(bed) == len(NOISE_KINDS) * NOISE_SECONDS_PER_KIND * SAMPLE_RATE >= 60 * SAMPLE_RATE
    for part in np.split(bed, len(NOISE_KINDS)):
        assert dbfs(part) == pytest.approx(NOISE_DBFS, abs=0.1)


# --- synth-kws ---


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("EDGEGRU_CACHE")
    os.environ["EDGEGRU_CACHE"] = str(directory)
    yield directory
    if previous is None:
        del os.environ["EDGEGRU_CACHE"]
    else:
        os.environ["EDGEGRU_CACHE"] = previous


@pytest.fixture(scope="module")
def digits(cache):
    return load_synth_kws("digits", "small")


def test_synth_kws_shapes_classes_and_balance(digits):
    assert digits.class_names == [*kws_clips.DIGITS, "_unknown_", "_silence_"]
    assert set(digits.splits) == {"train", "val", "test", "test-engine", "real"}
    for name, split in digits.splits.items():
        assert split.audio.dtype == np.int16 and split.audio.shape == (len(split), CLIP_SAMPLES)
        assert split.y.dtype == np.int64 and split.speaker.dtype == np.int64
        classes = 10 if name == "real" else 12
        counts = np.bincount(split.y, minlength=classes)
        assert len(counts) == classes and counts.min() == counts.max() > 0, name  # every class equally often
        assert np.all((split.speaker == SILENCE_SPEAKER) == (split.y == 11)), name
        assert np.all(np.abs(split.audio).max(axis=1) > 0), name  # no all-zero clip
    assert len(digits.splits["train"]) == 12 * (SIZES["small"].voices["train"] + SIZES["small"].random_voices)
    assert {name: len(noise) for name, noise in digits.noise.items()} == {s: 60 * SAMPLE_RATE for s in ("train", "val", "test")}


def test_synth_kws_splits_share_no_voice(digits):
    speakers = {name: set(split.speaker.tolist()) - {SILENCE_SPEAKER} for name, split in digits.splits.items()}
    names = list(speakers)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not speakers[a] & speakers[b], (a, b)
    full = espeak_voices(SIZES["full"])
    assert {split: len(voices) for split, voices in full.items()} == {"train": 320, "val": 80, "test": 80}
    variants = {split: {voice.split("+")[1] for voice in voices} for split, voices in full.items()}
    assert not variants["train"] & variants["val"] and not variants["train"] & variants["test"]
    assert not variants["val"] & variants["test"]


def test_synth_kws_is_deterministic_to_the_byte(digits, cache, tmp_path):
    again = save_clips(tmp_path / "again.npz", synth_kws.generate("digits", SIZES["small"]))
    assert again.read_bytes() == synth_kws.cache_path("digits", "small").read_bytes()


def test_synth_kws_cache_is_reused_without_synthesizing(digits, monkeypatch):
    def no_synthesizer(*args, **kwargs):
        raise AssertionError("the synthesizer ran although the clips are cached")

    monkeypatch.setattr(speech_synth.subprocess, "run", no_synthesizer)
    cached = load_synth_kws("digits", "small")
    assert all(np.array_equal(cached.splits[s].audio, digits.splits[s].audio) for s in digits.splits)
    assert synth_kws.cache_path("digits", "small").name.endswith(f"-v{synth_kws.GENERATOR_VERSION}.npz")


def test_synth_kws_of_another_version_is_replaced(digits, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEGRU_CACHE", str(tmp_path))
    monkeypatch.setattr(synth_kws, "generate", lambda vocabulary, size: digits)
    old = synth_kws.cache_path("digits", "small", synth_kws.GENERATOR_VERSION - 1)
    old.write_bytes(b"clips of an older generator")
    other = synth_kws.cache_path("commands", "small", synth_kws.GENERATOR_VERSION - 1)
    other.write_bytes(b"another vocabulary's")
    load_synth_kws("digits", "small")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([other.name, synth_kws.cache_path("digits", "small").name])


def test_synth_kws_interrupted_write_leaves_no_cache(digits, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEGRU_CACHE", str(tmp_path / "fresh"))
    monkeypatch.setattr(synth_kws, "generate", lambda vocabulary, size: digits)
    write_array, calls = np.lib.format.write_array, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        write_array(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_synth_kws("digits", "small")
    assert len(calls) == 4 and not any((tmp_path / "fresh").iterdir())


def test_training_clips_over_the_bed_carry_one_more_stretch_of_it(monkeypatch):
    words = [sine(300 + 50 * i, SAMPLE_RATE, 0.4, 3000) for i in range(20)]
    bed = noise_bed(np.random.default_rng(1), words[:3])
    plain = synth_kws._split(words, [0] * 20, list(range(20)), bed, 5, 11, np.random.default_rng(4))
    stretches = []
    real_window = synth_kws.noise_window

    def window(noise, rng):
        stretches.append(real_window(noise, rng))
        return stretches[-1]

    monkeypatch.setattr(synth_kws, "noise_window", window)
    both = synth_kws._split(words, [0] * 20, list(range(20)), bed, 5, 11, np.random.default_rng(4), bed_share=0.5)
    extra = stretches[25:]  # after the 25 clips' own noise: one stretch per clip laid over the bed
    changed = [i for i in range(25) if not np.array_equal(both.audio[i], plain.audio[i])]
    assert 5 <= len(changed) == len(extra) <= 20
    for i, stretch in zip(changed, extra):
        expected = np.clip(plain.audio[i].astype(np.int32) + stretch, -32768, 32767)
        assert np.array_equal(both.audio[i], expected)


def test_both_front_ends_make_datasets_of_one_shape(digits):
    q15, flt = kws_dataset(digits, "q15", "d-q15"), kws_dataset(digits, "float", "d-float")
    assert q15.input_codes == CODES_PER_UNIT and flt.input_codes is None
    for split in ("train", "val", "test"):
        a, b = getattr(q15, split), getattr(flt, split)
        assert a.x.shape == b.x.shape and a.x.shape[1:] == (49, 10) and np.array_equal(a.y, b.y)
        assert a.x.dtype == b.x.dtype == np.float32 and not np.allclose(a.x, b.x)
    assert np.array_equal(q15.train.x, np.round(q15.train.x))  # the codes themselves
    assert set(q15.extra_tests) == set(flt.extra_tests) == {"test-engine", "real"}
    for split in ("val", "test"):
        assert [r.signal.shape for r in q15.recordings[split]] == [r.signal.shape for r in flt.recordings[split]]


def test_synth_kws_errors(monkeypatch, tmp_path):
    with pytest.raises(EdgeGRUError, match="vocabulary 'colors'"):
        load_synth_kws("colors")
    with pytest.raises(EdgeGRUError, match="size 'huge'"):
        load_synth_kws("commands", "huge")
    monkeypatch.setenv("EDGEGRU_CACHE", str(tmp_path))
    monkeypatch.setattr(speech_synth.shutil, "which", lambda program: None)
    with pytest.raises(EdgeGRUError, match=r"'espeak-ng' is not installed .*make toolchain.*apt-get install espeak-ng flite"):
        load_synth_kws("commands", "small")
    monkeypatch.setattr(synth_kws, "ALLISON_DIGITS", tmp_path / "absent")
    with pytest.raises(EdgeGRUError, match="asterisk-core-sounds-en-wav"):
        load_synth_kws("digits", "small")
    assert not list(tmp_path.glob("*.npz"))


# --- Speech Commands ---


def speech_commands_tree(root: Path, words, speakers=("a1b2c3d4", "0000beef", "12345678")) -> Path:
    """One short clip per (word, speaker): the first speaker's are listed for validation, the second's for test."""
    for w, word in enumerate(words):
        for s, speaker in enumerate(speakers):
            write_wav(root / word / f"{speaker}_nohash_0.wav", sine(200 + 10 * w + s, SAMPLE_RATE, 0.5), SAMPLE_RATE)
    (root / "validation_list.txt").write_text("".join(f"{word}/{speakers[0]}_nohash_0.wav\n" for word in words))
    (root / "testing_list.txt").write_text("".join(f"{word}/{speakers[1]}_nohash_0.wav\n" for word in words))
    write_wav(root / "_background_noise_" / "white_noise.wav", sine(1000, SAMPLE_RATE, 5.0), SAMPLE_RATE)
    return root


def test_speech_commands_12_classes(tmp_path):
    clips = load_speech_commands(speech_commands_tree(tmp_path, [*COMMANDS, "bed", "cat"]), classes=12)
    assert clips.class_names == [*COMMANDS, "_unknown_", "_silence_"]
    for name, speaker in (("train", 0x12345678), ("val", 0xA1B2C3D4), ("test", 0x0000BEEF)):
        split = clips.splits[name]
        # ten command clips (by folder name), then 10% unknown (1 of bed/cat) and 10% silence (1)
        assert sorted(split.y[:10].tolist()) == list(range(10)) and split.y[10:].tolist() == [10, 11], name
        assert split.speaker.tolist() == [speaker] * 11 + [SILENCE_SPEAKER], name
        assert split.audio.shape == (12, CLIP_SAMPLES)
        assert np.all(split.audio[:11, SAMPLE_RATE // 2 :] == 0) and np.all(split.audio[:11, : SAMPLE_RATE // 2].any(axis=1))
    first_yes = np.flatnonzero(clips.splits["val"].y == 0)[0]  # "yes", 1st word of the tree, 1st speaker
    assert np.array_equal(clips.splits["val"].audio[first_yes, : SAMPLE_RATE // 2], sine(200, SAMPLE_RATE, 0.5))
    assert all(len(noise) >= 60 * SAMPLE_RATE for noise in clips.noise.values())


def test_speech_commands_35_classes(tmp_path):
    clips = load_speech_commands(speech_commands_tree(tmp_path, SPEECH_COMMANDS_WORDS), classes=35)
    assert clips.class_names == sorted(SPEECH_COMMANDS_WORDS)
    assert all(sorted(split.y.tolist()) == list(range(35)) for split in clips.splits.values())
    with pytest.raises(EdgeGRUError, match="not 7"):
        load_speech_commands(tmp_path, classes=7)


def test_speech_commands_errors(tmp_path):
    v1 = speech_commands_tree(tmp_path / "v1", SPEECH_COMMANDS_WORDS[:30])
    with pytest.raises(EdgeGRUError, match="30 words, not v2's 35"):
        load_speech_commands(v1, classes=35)
    with pytest.raises(EdgeGRUError, match="not a folder"):
        load_speech_commands(tmp_path / "absent")
    with pytest.raises(EdgeGRUError, match="no validation_list.txt, testing_list.txt, _background_noise_"):
        load_speech_commands(v1 / "yes")
    partial = speech_commands_tree(tmp_path / "partial", ["yes", "no"])
    with pytest.raises(EdgeGRUError, match="no folder for up, down"):
        load_speech_commands(partial)
    write_wav(v1 / "yes" / "recorded.wav", sine(200, SAMPLE_RATE, 0.1), SAMPLE_RATE)
    with pytest.raises(EdgeGRUError, match="recorded.wav is not named <speaker>_nohash_<n>.wav"):
        load_speech_commands(v1)
