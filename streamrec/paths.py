"""Where streamrec keeps its state: one data directory.

``--data-dir`` on the command line wins, then ``$STREAMREC_DATA``, then
``$XDG_DATA_HOME/streamrec`` (``~/.local/share/streamrec`` by default).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir"]


def data_dir(override: str | Path | None = None) -> Path:
    """The data directory (not created here)."""
    if override:
        return Path(override)
    env = os.environ.get("STREAMREC_DATA")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "streamrec"
