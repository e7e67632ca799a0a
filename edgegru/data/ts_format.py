"""Reader of the UEA/UCR `.ts` text format (sktime/aeon archive files).

Header lines start with `@` (`@classLabel true A B C` gives the class names, `@data` starts the body);
each body line holds one case: dimensions separated by `:`, values within a dimension by `,`, the
class label last.  Sequences may differ in length (`@equalLength false`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgegru.errors import EdgeGRUError


def read_ts(path: Path) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Return (sequences as float32 `[T_i, F]`, label per case, class names from the header)."""
    class_names: list[str] = []
    sequences, labels = [], []
    in_data = False
    for line_number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            lowered = line.lower()
            if lowered.startswith("@classlabel"):
                class_names = line.split()[2:]
            in_data = lowered == "@data"
            continue
        *dimensions, label = line.split(":")
        try:
            columns = [np.array(d.split(","), dtype=np.float32) for d in dimensions]
        except ValueError as error:
            raise EdgeGRUError(f"{path}:{line_number}: unreadable value ({error})") from None
        if len({len(c) for c in columns}) != 1:
            raise EdgeGRUError(f"{path}:{line_number}: dimensions have different lengths")
        sequences.append(np.stack(columns, axis=1))
        labels.append(label.strip())
    if not sequences:
        raise EdgeGRUError(f"{path}: no cases after @data")
    return sequences, labels, class_names
