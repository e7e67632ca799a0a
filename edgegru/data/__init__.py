"""Datasets behind one registry: `load_dataset(name)` gives a `Dataset` of uniform shape.

Names: `watch` (default), `japanese-vowels`, `basic-motions`, `digits`, the keyword-spotting sets
(`synth-kws`, generated once from Debian's speech synthesizers and cached; `-digits`: the digit
vocabulary with a real voice; `-float`: the float front end; `-small`: a quick subset), a user's Google
Speech Commands folder as `speech-commands:PATH` (12 classes) or `speech-commands-35:PATH`, or a path to
a user `.npz`.
"""

from __future__ import annotations

from pathlib import Path

from edgegru.data.dataset import Dataset, Normalization, Recording, Split
from edgegru.data.sources import load_digits, load_npz, load_uea, load_watch
from edgegru.errors import EdgeGRUError

DEFAULT_DATASET = "watch"


def synth_kws_loader(name: str, vocabulary: str, size: str, front_end: str):
    def load() -> Dataset:
        # Imported on use: the front ends bring CMSIS-DSP and librosa, which other datasets never need.
        from edgegru.data.kws import kws_dataset
        from edgegru.data.synth_kws import load_synth_kws

        return kws_dataset(load_synth_kws(vocabulary, size), front_end, name)

    return load


def speech_commands(spec: str) -> Dataset:
    from edgegru.data.kws import kws_dataset
    from edgegru.data.speech_commands import load_speech_commands

    kind, root = spec.split(":", 1)
    return kws_dataset(load_speech_commands(Path(root), 35 if kind.endswith("35") else 12), "q15", spec)


DATASETS = {
    "watch": load_watch,
    "japanese-vowels": lambda: load_uea("JapaneseVowels", "japanese-vowels"),
    "basic-motions": lambda: load_uea("BasicMotions", "basic-motions"),
    "digits": load_digits,
    "synth-kws": synth_kws_loader("synth-kws", "commands", "full", "q15"),
    "synth-kws-float": synth_kws_loader("synth-kws-float", "commands", "full", "float"),
    "synth-kws-digits": synth_kws_loader("synth-kws-digits", "digits", "full", "q15"),
    "synth-kws-small": synth_kws_loader("synth-kws-small", "commands", "small", "q15"),
}
SPEECH_COMMANDS = ("speech-commands:", "speech-commands-35:")


def load_dataset(name: str) -> Dataset:
    """A registered dataset by name, or a user `.npz` by path."""
    if name.endswith(".npz"):
        if not Path(name).is_file():
            raise EdgeGRUError(f"no such file: {name}")
        return load_npz(Path(name))
    if name.startswith(SPEECH_COMMANDS):
        return speech_commands(name)
    if name not in DATASETS:
        raise EdgeGRUError(f"unknown dataset '{name}'; available: {', '.join(DATASETS)}, "
                           f"speech-commands:PATH, speech-commands-35:PATH, or a path to a .npz file")
    return DATASETS[name]()


__all__ = ["DATASETS", "DEFAULT_DATASET", "Dataset", "Normalization", "Recording", "Split", "load_dataset"]
