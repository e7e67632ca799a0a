"""Random espeak-ng voices for training: new voice variants bred from the training split's variants.

espeak-ng shapes a voice with a variant file (`voices/!v/NAME` in its data directory): pitch, nine
formants (frequency, height and width, in percent of the default), voicing and breath, tone, echo,
flutter, roughness, consonants, the Klatt synthesizer.  The 60 training variants are only 60 timbres;
a model trained on them alone met some held-out timbres as strangers (a whispering woman at 18%; the
README's "Keyword spotting" has the figures).

A random voice takes each of its settings (`GROUPS`) from a training variant drawn for that setting
(a parent that does not set it leaves espeak-ng's default), scales every formant frequency by one
vocal-tract factor (`TRACT`) and jitters pitch and formants (`JITTER`).  Only training variants are
parents, so no held-out variant's file enters training.

The variants live in a data directory of our own in the user's cache: the system's `espeak-ng-data`
mirrored by symbolic links, with `voices/!v` holding only the random variants (espeak-ng lists at most
349 voices, its 131 languages among them, hence `MAX_VARIANTS`).  `espeak-ng --path DIR` selects it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edgegru.cache import cache_dir
from edgegru.data.speech_synth import require_programs
from edgegru.errors import EdgeGRUError

MAX_VARIANTS = 150
TRACT = (0.85, 1.2)  # every formant frequency times one factor per voice, uniform
JITTER = 0.1  # pitch and formant numbers times 1 + U(-JITTER, JITTER), each on its own
# Settings inherited together from one parent: a formant's three numbers, whisper's voicing and breath.
GROUPS = (("pitch",), *((f"formant {k}",) for k in range(9)), ("voicing", "breath", "breathw"), ("tone",),
          ("echo",), ("flutter",), ("roughness",), ("consonants",), ("klatt",))
JITTERED = ("pitch", "formant")


def system_data_dir() -> Path:
    """espeak-ng's own data directory, as `espeak-ng --version` states it."""
    require_programs(["espeak-ng"])
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"Data at:\s*(\S+)", version)
    if not found or not Path(found.group(1), "voices", "!v").is_dir():
        raise EdgeGRUError(f"espeak-ng does not say where its voice variants are (`espeak-ng --version`: {version.strip()!r})")
    return Path(found.group(1))


def read_variant(path: Path) -> dict[str, list[str]]:
    """The settings of a variant file: {"pitch": ["82", "118"], "formant 2": ["100", "70", "150"], ...}
    (comments and the settings outside `GROUPS` dropped)."""
    known = {key for group in GROUPS for key in group}
    settings = {}
    for line in path.read_text(errors="replace").splitlines():
        words = line.split("//")[0].split()
        if len(words) >= 3 and words[0] == "formant":
            key, values = f"formant {words[1]}", words[2:]
        elif words:
            key, values = words[0], words[1:]
        else:
            continue
        if key in known and values:
            settings[key] = values
    return settings


def _jittered(key: str, values: list[str], tract: float, rng: np.random.Generator) -> list[str]:
    if not key.startswith(JITTERED):
        return values
    numbers = [float(v) * (1 + rng.uniform(-JITTER, JITTER)) for v in values]
    if key.startswith("formant"):
        numbers[0] *= tract
    return [str(max(0, round(n))) for n in numbers]


def breed(parents: list[dict[str, list[str]]], name: str, rng: np.random.Generator) -> str:
    """The text of a variant file: each group of settings from a parent drawn for it."""
    tract = rng.uniform(*TRACT)
    lines = ["language variant", f"name {name}"]
    for group in GROUPS:
        parent = parents[int(rng.integers(len(parents)))]
        for key in group:
            if key in parent:
                lines.append(" ".join([key, *_jittered(key, parent[key], tract, rng)]))
    return "\n".join(lines) + "\n"


def _mirror(system: Path, data: Path, texts: dict[str, str]) -> None:
    """`data`: the system's espeak-ng data by symbolic links, with only `texts` as voice variants."""
    (data / "voices" / "!v").mkdir(parents=True)
    for entry in system.iterdir():
        if entry.name != "voices":
            (data / entry.name).symlink_to(entry)
    for entry in (system / "voices").iterdir():
        if entry.name != "!v":
            (data / "voices" / entry.name).symlink_to(entry)
    for name, text in texts.items():
        (data / "voices" / "!v" / name).write_text(text)


def random_variants(parents: list[str], count: int, seed) -> tuple[Path, list[str]]:
    """`count` random variants bred from the system variants named `parents`: (the espeak-ng data
    directory that holds them, for `--path`; their names).  Made once and kept in the user's cache."""
    if not 1 <= count <= MAX_VARIANTS:
        raise EdgeGRUError(f"random espeak-ng variants: 1..{MAX_VARIANTS}, asked for {count}")
    system = system_data_dir()
    files = {path.name.split()[0]: path for path in sorted((system / "voices" / "!v").iterdir())}  # "Mr serious": Mr
    missing = sorted(set(parents) - set(files))
    if missing:
        raise EdgeGRUError(f"espeak-ng has no voice variant {', '.join(missing)} in {system / 'voices' / '!v'}")
    settings = [read_variant(files[parent]) for parent in sorted(parents)]
    rng = np.random.default_rng(seed)
    names = [f"edgegru{i:03d}" for i in range(count)]
    texts = {name: breed(settings, name, rng) for name in names}
    digest = hashlib.sha256(str(system).encode() + "".join(texts.values()).encode()).hexdigest()[:16]
    root = cache_dir() / f"espeak-variants-{digest}"
    if not root.is_dir():
        temp = None
        try:
            root.parent.mkdir(parents=True, exist_ok=True)
            temp = Path(tempfile.mkdtemp(prefix=".espeak-variants-", dir=root.parent))
            _mirror(system, temp / "espeak-ng-data", texts)
            os.rename(temp, root)
        except OSError as error:
            if not root.is_dir():  # not another process that made it first (the same files)
                raise EdgeGRUError(f"cannot write the espeak-ng voice variants to {root}: {error}") from error
        finally:
            if temp is not None:
                shutil.rmtree(temp, ignore_errors=True)  # gone after the rename, or a half-made copy
    return root, names
