"""Detector and embedder together, for still images: what ``detect``, ``embed``, ``compare`` and
``eval-pairs`` share.

:class:`FaceModels` opens the engines (building them on first use) and processes images in
chunks: images of equal size go through MTCNN as one batch, and every face of a chunk goes through
FaceNet as one batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from streamrec.backends import BACKEND_PRECISIONS, FACE_ENGINE_BACKENDS, BackendOptions, open_backend
from streamrec.detect.mtcnn import MTCNN, MTCNNConfig
from streamrec.detect.types import FaceDetections
from streamrec.embed.facenet import EmbedConfig, FaceEmbedder
from streamrec.embed.select import Selection, main_face
from streamrec.engines import ENGINE_FILES, ensure_engines
from streamrec.images import DEFAULT_MAX_SIDE, ImageError, LoadedImage, load_image

__all__ = ["PRECISIONS", "FaceModels", "ImageFaces", "ModelsConfig", "Precision"]

Precision = Literal["fp32", "int8", "fp16", "bf16"]
#: Every FaceNet precision some backend offers (``BACKEND_PRECISIONS`` says which offers which).
PRECISIONS: tuple[str, ...] = tuple(dict.fromkeys(p for offered in BACKEND_PRECISIONS.values() for p in offered))


@dataclass(frozen=True)
class ModelsConfig:
    """Everything that decides what the still-image commands compute."""

    backend: str = "onnxruntime"
    backend_options: BackendOptions = field(default_factory=BackendOptions)
    #: FaceNet engine: ``fp32`` (the published model as converted) or ``int8`` (quantized,
    #: ~3.4x faster on CPUs with integer dot-product instructions; docs/accuracy.md); the
    #: ``torch`` backend offers ``fp16`` and ``bf16`` where its device computes in them.
    precision: Precision = "fp32"
    #: Where the ``torch`` backend runs: ``cpu``, ``cuda`` or ``cuda:N`` (the others run on the CPU).
    device: str = "cpu"
    detector: MTCNNConfig = field(default_factory=MTCNNConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    selection: Selection = "centre"
    max_side: int = DEFAULT_MAX_SIDE


@dataclass
class ImageFaces:
    """One image's outcome. ``error`` is set (and the rest empty) when the image is unusable.

    ``faces`` are in the coordinates of the original file. ``main`` indexes the main face (or is
    ``None``). ``embeddings`` holds one row per embedded face: every face, or only the main one,
    as requested.
    """

    path: Path
    faces: FaceDetections = field(default_factory=FaceDetections.empty)
    main: int | None = None
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 512), np.float32))
    error: str | None = None
    size: tuple[int, int] = (0, 0)


class FaceModels:
    """The MTCNN detector and the FaceNet embedder on one backend."""

    detector: MTCNN
    embedder: FaceEmbedder

    def __init__(
        self,
        config: ModelsConfig | None = None,
        engine_dir: Path | None = None,
        report: Callable[[str], None] = print,
    ) -> None:
        self.config = config or ModelsConfig()
        backend, precision = self.config.backend, self.config.precision
        offered = BACKEND_PRECISIONS.get(backend, PRECISIONS)
        if precision not in offered:
            raise ValueError(f"the {backend} backend computes FaceNet in {', '.join(offered)} (got {precision!r})")
        if backend in FACE_ENGINE_BACKENDS:
            self.detector, self.embedder = _open_torch(self.config)
        else:
            self._open_engines(engine_dir, report)

    def _open_engines(self, engine_dir: Path | None, report: Callable[[str], None]) -> None:
        """One backend per network, from the built engines (built now if missing)."""
        if self.config.device != "cpu":
            raise ValueError(
                f"device {self.config.device!r}: the {self.config.backend} backend runs on the CPU "
                "(the torch backend runs on CUDA)"
            )
        folder = ensure_engines(engine_dir, report)
        facenet = "facenet" if self.config.precision == "fp32" else "facenet_int8"
        opened = {
            name: open_backend(self.config.backend, folder / ENGINE_FILES[name], self.config.backend_options)
            for name in ("pnet", "rnet", "onet", facenet)
        }
        self.detector = MTCNN(opened["pnet"], opened["rnet"], opened["onet"], self.config.detector)
        self.embedder = FaceEmbedder(opened[facenet], self.config.embed)

    def detect(self, images: Sequence[np.ndarray], batch: int = 16) -> list[FaceDetections]:
        """Faces in each image; images of equal shape share MTCNN batches of up to ``batch``."""
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            groups[image.shape].append(i)
        result: list[FaceDetections] = [FaceDetections.empty()] * len(images)
        for members in groups.values():
            for start in range(0, len(members), batch):
                chunk = members[start : start + batch]
                for i, faces in zip(chunk, self.detector.detect(np.stack([images[i] for i in chunk]))):
                    result[i] = faces
        return result

    def analyse(
        self, paths: Iterable[Path], embed: str = "main", chunk: int = 32
    ) -> Iterator[ImageFaces]:
        """Detect (and embed) the faces of each image file, yielding results in input order.

        ``embed``: ``"main"`` (the main face only), ``"all"`` (every face) or ``"none"``.
        Unusable files come back with ``error`` set; they never stop the run.
        """
        batch: list[Path] = []
        for path in paths:
            batch.append(Path(path))
            if len(batch) == chunk:
                yield from self._analyse_chunk(batch, embed)
                batch = []
        if batch:
            yield from self._analyse_chunk(batch, embed)

    def _analyse_chunk(self, paths: list[Path], embed: str) -> list[ImageFaces]:
        loaded: list[LoadedImage] = []
        results: list[ImageFaces] = []
        for path in paths:
            try:
                image = load_image(path, self.config.max_side)
            except ImageError as exc:
                results.append(ImageFaces(path, error=str(exc)))
                continue
            loaded.append(image)
            results.append(ImageFaces(path, size=image.original_size))
        found = self.detect([image.rgb for image in loaded])
        usable = [r for r in results if r.error is None]
        crops, owners = [], []
        for result, image, faces in zip(usable, loaded, found):
            h, w = image.rgb.shape[:2]
            result.main = main_face(faces, w, h, self.config.selection)
            result.faces = faces.scaled(1.0 / image.scale)
            chosen = faces if embed == "all" else faces[[result.main]] if result.main is not None else None
            if embed != "none" and chosen is not None and len(chosen):
                crops.append(self.embedder.crops(image.rgb, chosen))
                owners.append((result, len(chosen)))
        if crops:
            vectors = self.embedder.embed_crops(np.concatenate(crops))
            start = 0
            for result, count in owners:
                result.embeddings = vectors[start : start + count]
                start += count
        return results


def _open_torch(config: ModelsConfig) -> tuple[MTCNN, FaceEmbedder]:
    """The torch backend's detector and embedder (:mod:`streamrec.backends.torch`), built from
    the published weights rather than the ONNX engines; ``ValueError`` in one line when PyTorch
    is missing or the device cannot be used."""
    try:
        from streamrec.backends.torch import TorchSettings, open_face_engine
    except ImportError as exc:
        raise ValueError(f"the torch backend needs PyTorch and torchvision ({exc}): pip install 'streamrec[torch]'") from None
    settings = TorchSettings(device=config.device, precision=config.precision)
    return open_face_engine(settings, config.backend_options, config.detector, config.embed)
