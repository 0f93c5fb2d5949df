"""Public-domain photos that ship inside installed packages, for the demo and the engine build.

They let ``streamrec demo`` and the build's parity checks run on real faces on a machine with
nothing else: NASA astronaut Eileen Collins (scikit-image), Rear Admiral Grace Hopper
(matplotlib) and the "cameraman" test photo (scikit-image). The files are located without
importing those packages.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["SAMPLES", "MissingSampleError", "sample_path"]

#: name -> (package that ships it, path inside the package, what it shows)
SAMPLES: dict[str, tuple[str, str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png", "NASA portrait of astronaut Eileen Collins"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "portrait of Grace Hopper"),
    "cameraman": ("skimage", "data/camera.png", "the classic grayscale 'cameraman' photo"),
}

_DISTRIBUTIONS = {"skimage": "scikit-image", "matplotlib": "matplotlib"}


class MissingSampleError(FileNotFoundError):
    """The package that ships a sample photo is not installed."""


def sample_path(name: str) -> Path:
    """Path of the sample photo called ``name`` (a key of :data:`SAMPLES`)."""
    if name not in SAMPLES:
        raise KeyError(f"no sample called {name!r}; choose one of: {', '.join(SAMPLES)}")
    package, relative, _ = SAMPLES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingSampleError(
            f"sample {name!r} ships with {_DISTRIBUTIONS[package]}, which is not installed "
            f"(pip install {_DISTRIBUTIONS[package]})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise MissingSampleError(f"sample {name!r} not found at {path}")
    return path
