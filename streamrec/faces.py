"""Detector and embedder together: the one face engine that the inference stage, the still-image
commands (``detect``, ``embed``, ``compare``, ``eval-pairs``, enrollment) and the benchmarks go
through.

:class:`FaceModels` opens the engines (building them on first use). Its callers hand it pixels
and boxes and get detections and embeddings back (:meth:`~FaceModels.detect`,
:meth:`~FaceModels.refine`, :meth:`~FaceModels.embed`); how the cascade, the crops and FaceNet
run is the detector's and the embedder's business, so a backend that keeps all of it on its
device serves every caller unchanged. Still images go in chunks: images of equal size go through
MTCNN as one batch, and every face of a chunk goes through FaceNet as one batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from streamrec.backends import Backend, BackendName, BackendOptions, backend_class
from streamrec.detect.mtcnn import MTCNN, MTCNNConfig, largest_frame_side
from streamrec.detect.types import FaceDetections
from streamrec.embed.facenet import EmbedConfig, FaceEmbedder
from streamrec.embed.select import Selection, main_face
from streamrec.engines import ENGINE_FILES, PUBLISHED_MODEL, ensure_engines, model_file
from streamrec.images import DEFAULT_MAX_SIDE, ImageError, LoadedImage, load_image

__all__ = [
    "DETECTION_PRECISIONS", "PRECISIONS", "DetectionPrecision", "FaceModels", "FrameTooLarge", "ImageFaces",
    "ModelsConfig", "Precision", "check_detection", "check_image_side", "face_engine",
]

Precision = Literal["fp32", "bf16", "fp16", "int8"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
DetectionPrecision = Literal["fp32", "bf16"]
DETECTION_PRECISIONS: tuple[DetectionPrecision, ...] = get_args(DetectionPrecision)
#: the backends whose R-Net and O-Net compute in bf16 (OpenVINO: measured, docs/accuracy.md)
_BF16_DETECTION = ("openvino",)


def check_detection(backend: BackendName, precision: str, options: BackendOptions) -> None:
    """Raise ``ValueError`` (one line) unless ``backend`` runs MTCNN's R-Net and O-Net in
    ``precision`` on the device and machine of ``options``. Cheap: no model is loaded."""
    if precision not in DETECTION_PRECISIONS:
        raise ValueError(f"detection precision must be one of {', '.join(DETECTION_PRECISIONS)} (got {precision!r})")
    if precision != "fp32" and backend not in _BF16_DETECTION:
        raise ValueError(f"detection in {precision} runs on the {' and '.join(_BF16_DETECTION)} backend only "
                         f"(got {backend})")
    backend_class(backend).check_options(replace(options, precision=precision))


class FrameTooLarge(ValueError):
    """Frames larger than the backend's engines take at the min face size asked for (one line).
    Raised before any work, so a caller that serves several cameras refuses one camera's frames
    and carries on with the others."""


def check_image_side(backend: type[Backend], max_side: int, min_face_size: float) -> None:
    """Raise :class:`FrameTooLarge` (one line, saying what to change) when images downscaled to
    ``max_side`` px could be too large for ``backend``'s engines at ``min_face_size``
    (:attr:`Backend.max_input_side`). It needs the backend's class only, not the machine it runs
    on: a configuration that can never work is refused before anything is built, loaded or run."""
    why = _size_refusal(backend.kind, backend.max_input_side, max_side, min_face_size)
    if why is not None:
        raise FrameTooLarge(f"images of up to {max_side} px are too large: {why}; lower --max-side or raise "
                            "--min-face-size")


def _size_refusal(kind: str, limit: int | None, side: int, min_face_size: float) -> str | None:
    """Why frames whose longer side is ``side`` px are too large for engines that take P-Net
    inputs up to ``limit`` px, or ``None`` when they fit."""
    if limit is None or side <= (largest := largest_frame_side(limit, min_face_size)):
        return None
    return (
        f"at min face size {min_face_size:g} px the {kind} backend takes frames up to {largest} px on their "
        f"longer side (its P-Net engine takes at most {limit} px), and {side} px needs a min face size of "
        f"{12 * side // limit + 1} px or more"
    )


@dataclass(frozen=True)
class ModelsConfig:
    """Everything that decides what the still-image commands compute."""

    backend: BackendName = "onnxruntime"
    backend_options: BackendOptions = field(default_factory=BackendOptions)
    #: How FaceNet computes: ``fp32`` (the published model as converted), ``bf16`` (the same
    #: file in bfloat16 arithmetic: OpenVINO or torch on CPUs with AVX-512 BF16 or AMX, torch on
    #: CUDA), ``fp16`` (half precision: TensorRT, torch on CUDA) or ``int8`` (the quantized file,
    #: ~3x faster on CPUs; docs/accuracy.md); each backend says which it runs
    #: (:attr:`Backend.precisions`). MTCNN computes as :attr:`detection` says.
    precision: Precision = "fp32"
    #: How MTCNN's R-Net and O-Net compute: ``fp32``, or ``bf16`` (OpenVINO on a CPU with AVX-512
    #: BF16 or AMX: about a fifth less time per frame, the same faces with boxes and landmarks
    #: within 2.5 px; but the crops move with them, and LFW View 1 fell from 0.986 to 0.982-0.984,
    #: outside the accuracy bound, so it is only run when asked for; docs/accuracy.md). P-Net
    #: always computes in fp32: bf16 moves its face probabilities by a few hundredths (measured on a
    #: CPU with AMX), enough to move candidates across its threshold, and it gains little from bf16
    #: (its time is memory and calls, not arithmetic).
    detection: DetectionPrecision = "fp32"
    detector: MTCNNConfig = field(default_factory=MTCNNConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    selection: Selection = "centre"
    #: The longest side image files are downscaled to (:meth:`FaceModels.analyse`); ``None`` for
    #: models that read no files (the pipeline's inference stage): frames are taken at their own
    #: size, checked as they come (:meth:`FaceModels.detect`).
    max_side: int | None = DEFAULT_MAX_SIDE
    #: Which FaceNet embeds: ``facenet`` (the published one) or the name of one ``streamrec
    #: train`` wrote into the engine folder. Embeddings of different models never compare.
    model: str = PUBLISHED_MODEL


@dataclass
class ImageFaces:
    """One image's outcome. ``error`` is set (and the rest empty) when the image is unusable.

    ``faces`` are in the coordinates of the original file. ``main`` indexes the main face (or is
    ``None``). ``embeddings`` holds one row per embedded face: every face, or only the main one,
    as requested. ``crop``: the main face's ``(160, 160, 3)`` uint8 crop, cut as it is for
    embedding, when asked for (training feeds its own network the very crops inference would).
    """

    path: Path
    faces: FaceDetections = field(default_factory=FaceDetections.empty)
    main: int | None = None
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 512), np.float32))
    error: str | None = None
    size: tuple[int, int] = (0, 0)
    crop: np.ndarray | None = None


class FaceModels:
    """The MTCNN detector and the FaceNet embedder on one backend."""

    def __init__(
        self,
        config: ModelsConfig | None = None,
        engine_dir: Path | None = None,
        report: Callable[[str], None] = print,
    ) -> None:
        self.config = config or ModelsConfig()
        if self.config.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (got {self.config.precision!r})")
        backend = backend_class(self.config.backend)
        if self.config.max_side is not None:  # a matter of configuration: said before whether it runs here
            check_image_side(backend, self.config.max_side, self.config.detector.min_face_size)
        proposal = replace(self.config.backend_options, precision="fp32")
        detection = replace(self.config.backend_options, precision=self.config.detection)
        embedding = replace(self.config.backend_options, precision=self.config.precision)
        # before engines are built or loaded
        check_detection(self.config.backend, self.config.detection, self.config.backend_options)
        backend.check_options(embedding)
        folder = ensure_engines(engine_dir, report)
        pnet = backend(folder / ENGINE_FILES["pnet"], proposal)
        rnet, onet = (backend(folder / ENGINE_FILES[name], detection) for name in ("rnet", "onet"))
        facenet = backend(model_file(folder, self.config.model, self.config.precision, self.config.backend), embedding)
        #: the four nets, P-, R-, O-Net and FaceNet
        self.nets = (pnet, rnet, onet, facenet)
        detector, embedder = face_engine(self.config.backend)
        self.detector = detector(pnet, rnet, onet, self.config.detector)
        self.embedder = embedder(facenet, self.config.embed)

    def detect(self, frames: np.ndarray, min_face_size: float | None = None) -> list[FaceDetections]:
        """Faces in ``(N, H, W, 3)`` uint8 RGB frames of one shape (or one ``(H, W, 3)`` frame),
        one :class:`FaceDetections` per frame, highest score first: the whole cascade, looking
        for faces from ``min_face_size`` px up (default: the configured size). A detector per
        size is made on first use and kept: cameras may each set their own.

        Raises :class:`FrameTooLarge` before any work when the frames are larger than the engines
        take at that min face size (TensorRT's P-Net engine has a largest size)."""
        detector = self._detector(min_face_size)
        if frames.ndim in (3, 4):  # other shapes: the detector says what it wants
            height, width = frames.shape[-3:-1]
            why = _size_refusal(self.config.backend, self.nets[0].max_input_side, max(height, width),
                                detector.config.min_face_size)
            if why is not None:
                raise FrameTooLarge(
                    f"{width}x{height} frames are too large: {why}; downscale them or raise the min face size"
                )
        return detector.detect(frames)

    def refine(self, frames: np.ndarray, boxes: Sequence[np.ndarray]) -> list[FaceDetections]:
        """Re-detect known faces only: the cascade's last stage on ``boxes[i]`` ``(k, 4)`` of
        frame ``i`` (where tracked faces are predicted to be), at a fraction of :meth:`detect`'s
        cost. Boxes it rejects are missing from the result; the rest come back corrected."""
        return self.detector.refine(frames, list(boxes))

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[FaceDetections]) -> np.ndarray:
        """``(k, 512)`` float32 unit vectors of the faces ``faces[i]`` found in ``images[i]``
        (uint8 RGB), every face of every image in order, embedded as one FaceNet batch."""
        return self.embedder.embed_images(images, faces)

    def detect_images(self, images: Sequence[np.ndarray], batch: int = 16) -> list[FaceDetections]:
        """Faces in each image, whatever their sizes; images of equal shape share MTCNN batches
        of up to ``batch``."""
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            groups[image.shape].append(i)
        result: list[FaceDetections] = [FaceDetections.empty()] * len(images)
        for members in groups.values():
            for start in range(0, len(members), batch):
                chunk = members[start : start + batch]
                for i, faces in zip(chunk, self.detect(np.stack([images[i] for i in chunk]))):
                    result[i] = faces
        return result

    @cached_property
    def _detectors(self) -> dict[float, MTCNN]:
        """Detectors by min face size, beside the configured one, made as they are asked for."""
        return {}

    def _detector(self, min_face_size: float | None) -> MTCNN:
        if min_face_size is None or min_face_size == self.detector.config.min_face_size:
            return self.detector
        if min_face_size not in self._detectors:
            config = replace(self.detector.config, min_face_size=min_face_size)
            self._detectors[min_face_size] = self.detector.with_config(config)
        return self._detectors[min_face_size]

    def analyse(
        self, paths: Iterable[Path], embed: str = "main", chunk: int = 32, crop: bool = False
    ) -> Iterator[ImageFaces]:
        """Detect (and embed) the faces of each image file, yielding results in input order.

        ``embed``: ``"main"`` (the main face only), ``"all"`` (every face) or ``"none"``.
        ``crop``: also return the main face's crop (:attr:`ImageFaces.crop`).
        Unusable files come back with ``error`` set; they never stop the run.
        """
        max_side = self.config.max_side
        if max_side is None:
            raise ValueError("these models read no image files: their max_side is None")
        batch: list[Path] = []
        for path in paths:
            batch.append(Path(path))
            if len(batch) == chunk:
                yield from self._analyse_chunk(batch, embed, crop, max_side)
                batch = []
        if batch:
            yield from self._analyse_chunk(batch, embed, crop, max_side)

    def _analyse_chunk(self, paths: list[Path], embed: str, crop: bool, max_side: int) -> list[ImageFaces]:
        loaded: list[LoadedImage] = []
        results: list[ImageFaces] = []
        for path in paths:
            try:
                image = load_image(path, max_side)
            except ImageError as exc:
                results.append(ImageFaces(path, error=str(exc)))
                continue
            loaded.append(image)
            results.append(ImageFaces(path, size=image.original_size))
        found = self.detect_images([image.rgb for image in loaded])
        usable = [r for r in results if r.error is None]
        owners: list[tuple[ImageFaces, LoadedImage, FaceDetections]] = []
        for result, image, faces in zip(usable, loaded, found):
            h, w = image.rgb.shape[:2]
            result.main = main_face(faces, w, h, self.config.selection)
            result.faces = faces.scaled(1.0 / image.scale)
            if crop and result.main is not None:
                result.crop = self.embedder.crops(image.rgb, faces[[result.main]])[0]
            chosen = faces if embed == "all" else faces[[result.main]] if result.main is not None else None
            if embed != "none" and chosen is not None and len(chosen):
                owners.append((result, image, chosen))
        vectors = self.embed([image.rgb for _, image, _ in owners], [chosen for _, _, chosen in owners])
        start = 0
        for result, _, chosen in owners:
            result.embeddings = vectors[start : start + len(chosen)]
            start += len(chosen)
        return results


def face_engine(backend: BackendName) -> tuple[type[MTCNN], type[FaceEmbedder]]:
    """The detector and embedder classes around ``backend``'s nets. Every backend but ``torch``
    runs the nets alone, and the host the cascade and the crops around them; the torch backend
    runs those on its device too (:mod:`streamrec.backends.torch`), with the same interfaces."""
    if backend == "torch":
        from streamrec.backends.torch import TorchFaceEmbedder, TorchMTCNN

        return TorchMTCNN, TorchFaceEmbedder
    return MTCNN, FaceEmbedder
