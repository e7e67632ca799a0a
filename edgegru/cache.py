"""Where generated data is cached between runs: `$EDGEGRU_CACHE`, else `$XDG_CACHE_HOME/edgegru`, else
`~/.cache/edgegru`."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The user's cache directory for edgegru (not created here; writers create it)."""
    if os.environ.get("EDGEGRU_CACHE"):
        return Path(os.environ["EDGEGRU_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "edgegru"
