"""The worker side of ``streamrec bench peers``: one process per system.

Run as ``python -m streamrec.bench.peer_workers SPEC.json RESULT.json`` by
:mod:`streamrec.bench.peers`, with the thread budget already in the environment
(``OMP_NUM_THREADS`` and friends, read when the native libraries load), once per phase:

* ``photos`` (:func:`run_photos`): load one system, enroll the people of the spec (saved in the
  spec's work folder), embed the photos of the pair lists (the photos' own, and ``--pairs``) for
  the verification scores;
* ``video`` (:func:`run_video`): load the system and the enrolled people, decode the clip frame by
  frame with OpenCV (every worker decodes the same file the same way, so all systems see identical
  pixels; a digest of the decoded frames proves it) and time only the system's own work on each
  frame.

Each writes one JSON result.

The three systems, each used the way its own documentation shows:

``face_recognition``
    ``face_locations(rgb)`` (dlib's HOG detector, one upsample) then ``face_encodings(rgb,
    locations)`` (dlib's ResNet, 128-d) per frame; each encoding is named with ``face_distance`` /
    ``compare_faces`` at the library's default tolerance 0.6 against one encoding per enrollment
    photo (``face_encodings(photo)[0]``), as its README's webcam examples do. (Its
    ``facerec_from_video_file.py`` example passes ``tolerance=0.50``.)
``facenet_pytorch``
    ``MTCNN(keep_all=True)`` with its defaults (160 px crops, margin 0, min face 20) on a PIL
    image, then ``InceptionResnetV1(crops)``: what ``mtcnn(img)`` does, called as its two halves
    (``detect`` then ``extract``, exactly the body of ``MTCNN.forward``) so detection and
    embedding are timed apart. Its own pretrained weights cannot be downloaded here, so the
    network holds Sandberg's 20180408-102900 weights, converted by :func:`convert_facenet_weights`
    from the same graph our ONNX engine comes from; names are given at Euclidean distance < 1.12,
    our documented threshold for that model. Enrollment photos: ``MTCNN()`` (largest face).
``streamrec``
    :class:`~streamrec.faces.FaceModels` per frame: MTCNN, FaceNet on every face, then the
    :class:`~streamrec.match.Matcher` over a watchlist enrolled with
    :func:`~streamrec.match.enroll.enroll_photos`. The same per-frame work, without the
    pipeline's tracking (which skips embeddings; see ``streamrec bench pipeline``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SYSTEMS", "convert_facenet_weights", "facenet_pytorch_state_dict", "main"]

SYSTEMS = ("face_recognition", "facenet_pytorch", "streamrec")

#: face_recognition's default ``compare_faces`` tolerance.
FACE_RECOGNITION_TOLERANCE = 0.6


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# -- facenet-pytorch with Sandberg's weights ---------------------------------------------------
def facenet_pytorch_state_dict(ours: Any, theirs: Any) -> dict[str, Any]:
    """A state dict for facenet-pytorch's ``InceptionResnetV1`` (``theirs``, any instance) that
    computes what our converted network ``ours`` (:class:`streamrec.embed.nets.InceptionResnetV1`)
    computes.

    Both modules register their layers in the same order (stem, the blocks with their branches,
    the residual up-projections, the head), so convolutions are paired in that order, and every
    pair's shape, stride and padding must agree. The graph's batch norms are folded into our
    convolutions; facenet-pytorch's ``BasicConv2d`` keeps a separate ``BatchNorm2d``
    (eps 0.001), which gets the identity statistics (mean 0, variance 1 - eps, gamma 1) and the
    folded bias as its beta.
    """
    import torch
    from facenet_pytorch.models.inception_resnet_v1 import BasicConv2d
    from torch import nn

    from streamrec.embed.nets import ConvUnit, UpProjection

    source = [m.conv if isinstance(m, ConvUnit) else m for m in ours.modules() if isinstance(m, (ConvUnit, UpProjection))]
    target: list[tuple[str, nn.Conv2d, nn.BatchNorm2d | None]] = []
    for name, module in theirs.named_modules():
        if isinstance(module, BasicConv2d):
            target.append((name, module.conv, module.bn))
        elif isinstance(module, nn.Conv2d) and name.rsplit(".", 1)[-1] == "conv2d":
            target.append((name, module, None))
    if len(source) != len(target):
        raise ValueError(f"layer counts differ: ours {len(source)} convolutions, facenet-pytorch {len(target)}")
    state = {k: v.clone() for k, v in theirs.state_dict().items()}
    for conv, (name, their_conv, bn) in zip(source, target):
        same = (
            conv.weight.shape == their_conv.weight.shape
            and tuple(conv.stride) == tuple(their_conv.stride)
            and tuple(conv.padding) == tuple(their_conv.padding)
        )
        if not same:
            raise ValueError(
                f"{name}: facenet-pytorch has {tuple(their_conv.weight.shape)} stride {their_conv.stride} padding "
                f"{their_conv.padding}, ours {tuple(conv.weight.shape)} stride {conv.stride} padding {conv.padding}"
            )
        if conv.bias is None:  # every converted convolution carries its folded batch norm as a bias
            raise ValueError(f"{name}: our convolution has no bias")
        bias = conv.bias.detach().clone()
        if bn is None:
            state[f"{name}.weight"] = conv.weight.detach().clone()
            state[f"{name}.bias"] = bias
            continue
        prefix = name
        state[f"{prefix}.conv.weight"] = conv.weight.detach().clone()
        state[f"{prefix}.bn.weight"] = torch.ones_like(bias)
        state[f"{prefix}.bn.bias"] = bias
        state[f"{prefix}.bn.running_mean"] = torch.zeros_like(bias)
        state[f"{prefix}.bn.running_var"] = torch.full_like(bias, 1.0 - bn.eps)
    if theirs.last_bn.eps != ours.bottleneck_bn.eps:
        raise ValueError(f"head batch norm eps differs: {theirs.last_bn.eps} vs {ours.bottleneck_bn.eps}")
    state["last_linear.weight"] = ours.bottleneck.weight.detach().clone()
    for key in ("weight", "bias", "running_mean", "running_var"):
        state[f"last_bn.{key}"] = getattr(ours.bottleneck_bn, key).detach().clone()
    return state


def convert_facenet_weights(out: Path) -> dict[str, Any]:
    """Convert Sandberg's graph (as the engine build does) and save facenet-pytorch's state dict
    to ``out`` (atomically); returns what was converted."""
    import torch
    from facenet_pytorch import InceptionResnetV1

    from streamrec.engines.facenet import facenet_from_graph
    from streamrec.engines.sources import locate_sources
    from streamrec.engines.tfgraph import read_graph

    source = locate_sources()["facenet"]
    ours = facenet_from_graph(read_graph(source.path))
    theirs = InceptionResnetV1(classify=False).eval()
    state = facenet_pytorch_state_dict(ours, theirs)
    theirs.load_state_dict(state, strict=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return {"graph": f"{source.distribution} {source.version} {source.relative_path}", "graph_sha256": source.sha256, "tensors": len(state)}


# -- the systems -------------------------------------------------------------------------------
class _FaceRecognition:
    name = "face_recognition"

    def __init__(self, spec: dict[str, Any]) -> None:
        _pkg_resources_shim()
        import dlib
        import face_recognition

        self.fr = face_recognition
        self.tolerance = FACE_RECOGNITION_TOLERANCE
        self.known = np.zeros((0, 128))
        self.known_names: list[str] = []
        self.info = {
            "versions": {"face_recognition": _version("face_recognition"), "dlib": dlib.__version__,
                         "dlib_bin": _version("dlib-bin"), "face_recognition_models": _version("face_recognition_models")},
            "detector": "dlib HOG (face_locations, number_of_times_to_upsample=1)",
            "embedder": "dlib ResNet 128-d (face_encodings: 5-point landmarks, num_jitters=1)",
            "match": f"face_distance / compare_faces, tolerance {self.tolerance} (the library default), nearest known photo",
            "threshold": self.tolerance,
            "dlib_avx": bool(getattr(dlib, "USE_AVX_INSTRUCTIONS", False)),
            "dlib_blas": bool(getattr(dlib, "DLIB_USE_BLAS", False)),
        }

    def embed_photo(self, rgb: np.ndarray) -> np.ndarray | None:
        found = self.fr.face_encodings(rgb)
        return np.asarray(found[0]) if found else None

    def enroll(self, names: list[str], vectors: list[np.ndarray]) -> None:
        self.known_names, self.known = names, np.array(vectors)

    def process(self, rgb: np.ndarray) -> tuple[list[tuple[str | None, float]], dict[str, float]]:
        t0 = time.perf_counter()
        locations = self.fr.face_locations(rgb)
        t1 = time.perf_counter()
        encodings = self.fr.face_encodings(rgb, locations)
        t2 = time.perf_counter()
        faces: list[tuple[str | None, float]] = []
        for encoding in encodings:
            if not self.known_names:
                faces.append((None, float("inf")))
                continue
            distances = self.fr.face_distance(self.known, encoding)
            matches = self.fr.compare_faces(self.known, encoding, tolerance=self.tolerance)
            best = int(np.argmin(distances))
            faces.append((self.known_names[best] if matches[best] else None, float(distances[best])))
        t3 = time.perf_counter()
        return faces, {"detect": t1 - t0, "embed": t2 - t1, "match": t3 - t2}


class _FacenetPytorch:
    name = "facenet_pytorch"

    def __init__(self, spec: dict[str, Any]) -> None:
        import torch
        from facenet_pytorch import MTCNN, InceptionResnetV1
        from PIL import Image

        torch.set_num_threads(spec["threads"])
        self.torch, self.image = torch, Image
        weights = spec.get("facenet_pytorch_weights")
        if not weights or not Path(weights).is_file():
            raise RuntimeError(f"converted FaceNet weights not found ({weights})")
        self.mtcnn = MTCNN(keep_all=True, device="cpu")
        self.mtcnn_photo = MTCNN(device="cpu")
        self.resnet = InceptionResnetV1(classify=False).eval()
        self.resnet.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
        self.threshold = float(spec["threshold"])
        self.known = np.zeros((0, 512), np.float32)
        self.known_names: list[str] = []
        self.photo_crops: list[np.ndarray] = []
        self.info = {
            "versions": {"facenet_pytorch": _version("facenet-pytorch"), "torch": torch.__version__},
            "detector": f"facenet_pytorch.MTCNN(keep_all=True): min_face_size {self.mtcnn.min_face_size}, "
            f"thresholds {self.mtcnn.thresholds}, factor {self.mtcnn.factor}",
            "embedder": f"facenet_pytorch.InceptionResnetV1 with FaceNet 20180408-102900 weights (converted); "
            f"crops {self.mtcnn.image_size} px, margin {self.mtcnn.margin}, fixed_image_standardization",
            "match": f"Euclidean distance to the nearest enrolled embedding < {self.threshold}",
            "threshold": self.threshold,
            "torch_threads": torch.get_num_threads(),
        }

    def _embed(self, crops: Any) -> np.ndarray:
        with self.torch.no_grad():
            return self.resnet(crops).numpy()

    def embed_photo(self, rgb: np.ndarray) -> np.ndarray | None:
        crop = self.mtcnn_photo(self.image.fromarray(rgb))
        if crop is None:
            return None
        if len(self.photo_crops) < 16:  # kept for the weights check against our ONNX FaceNet
            self.photo_crops.append(np.clip(np.rint(crop.numpy().transpose(1, 2, 0) * 128.0 + 127.5), 0, 255).astype(np.uint8))
        return self._embed(crop[None])[0]

    def enroll(self, names: list[str], vectors: list[np.ndarray]) -> None:
        self.known_names, self.known = names, np.array(vectors, np.float32).reshape(-1, 512)

    def process(self, rgb: np.ndarray) -> tuple[list[tuple[str | None, float]], dict[str, float]]:
        t0 = time.perf_counter()
        image = self.image.fromarray(rgb)
        boxes, _, _ = self.mtcnn.detect(image, landmarks=True)
        t1 = time.perf_counter()
        faces: list[tuple[str | None, float]] = []
        if boxes is not None:
            crops = self.mtcnn.extract(image, boxes, None)
            vectors = self._embed(crops)
        else:
            vectors = np.zeros((0, 512), np.float32)
        t2 = time.perf_counter()
        if len(vectors) and self.known_names:
            dist = np.linalg.norm(vectors[:, None, :] - self.known[None, :, :], axis=2)
            for row in dist:
                best = int(np.argmin(row))
                faces.append((self.known_names[best] if row[best] < self.threshold else None, float(row[best])))
        else:
            faces = [(None, float("inf"))] * len(vectors)
        t3 = time.perf_counter()
        return faces, {"detect": t1 - t0, "embed": t2 - t1, "match": t3 - t2}

    def weights_check(self, engine_dir: str | None, frame: np.ndarray) -> dict[str, Any]:
        """Our ONNX FaceNet and this network on the same real aligned crops (the photos' and
        those of ``frame``, as facenet-pytorch's MTCNN cuts them): they must agree to a cosine of
        0.999."""
        from streamrec.backends import BackendOptions, open_backend
        from streamrec.engines import ENGINE_FILES, ensure_engines

        found = self.mtcnn(self.image.fromarray(frame))
        from_frame = [] if found is None else list(found.numpy().transpose(0, 2, 3, 1))
        listed = [*self.photo_crops, *(np.clip(np.rint(c * 128.0 + 127.5), 0, 255).astype(np.uint8) for c in from_frame)]
        if not listed:
            return {"crops": 0}
        crops = np.stack(listed)
        folder = ensure_engines(Path(engine_dir) if engine_dir else None, _progress)
        onnx = open_backend("onnxruntime", folder / ENGINE_FILES["facenet"], BackendOptions(threads=1)).run(crops)[0]
        standardised = self.torch.from_numpy((crops.astype(np.float32) - 127.5) / 128.0).permute(0, 3, 1, 2).contiguous()
        cosines = np.sum(onnx * self._embed(standardised), axis=1)
        return {"crops": len(crops), "min_cosine_vs_onnx": float(cosines.min()), "ok": bool(cosines.min() >= 0.999)}


class _Streamrec:
    name = "streamrec"

    def __init__(self, spec: dict[str, Any]) -> None:
        from streamrec.backends import BackendOptions, backend_class
        from streamrec.faces import FaceModels, ModelsConfig

        options = BackendOptions(threads=spec["threads"], device=spec.get("device"))
        backend = spec.get("backend", "onnxruntime")
        self.models = FaceModels(
            ModelsConfig(backend=backend, backend_options=options, precision=spec.get("precision", "fp32"),
                         detection=spec.get("detection", "fp32")),
            Path(spec["engines"]) if spec.get("engines") else None,
            _progress,
        )
        self.threshold = float(spec["threshold"])
        self.matcher: Any = None
        cfg = self.models.config
        library = backend_class(backend).library
        where = f"{backend} on {options.device or 'its default device'}"
        self.info = {
            "versions": {"streamrec": _version("streamrec"), library: _version(library)},
            "detector": f"streamrec MTCNN ({where}): min_face_size {cfg.detector.min_face_size:g}, "
            f"thresholds {list(cfg.detector.thresholds)}, factor {cfg.detector.factor}, R-Net and O-Net in {cfg.detection}",
            "embedder": f"FaceNet 20180408-102900 ({where}) {cfg.precision}: {cfg.embed.alignment} crops, margin {cfg.embed.margin}, flip {cfg.embed.flip}",
            "match": f"streamrec.match.Matcher: nearest enrolled embedding at distance < {self.threshold}",
            "threshold": self.threshold,
            "ort_threads": spec["threads"],
        }

    def enroll_folders(self, people: dict[str, list[str]], folder: Path) -> dict[str, Any]:
        from streamrec.match import Watchlist
        from streamrec.match.enroll import enroll_photos

        enrolled: dict[str, int] = {}
        refused: dict[str, str] = {}
        with Watchlist(folder) as store:
            for name, photos in people.items():
                report = enroll_photos(store, self.models, name, [Path(p) for p in photos])
                enrolled[name] = sum(p.face is not None for p in report.photos)
                refused.update({str(p.image): p.refused for p in report.photos if p.refused})
        return {"photos": enrolled, "refused": refused}

    def open_watchlist(self, folder: Path) -> None:
        from streamrec.match import Matcher
        from streamrec.match.store import DB_NAME

        if (folder / DB_NAME).is_file():
            self.matcher = Matcher(folder, self.threshold)

    def process(self, rgb: np.ndarray) -> tuple[list[tuple[str | None, float]], dict[str, float]]:
        t0 = time.perf_counter()
        found = self.models.detect(rgb)[0]
        t1 = time.perf_counter()
        vectors = self.models.embed([rgb], [found])
        t2 = time.perf_counter()
        if self.matcher is not None and len(vectors):
            faces = [(m.name, m.distance) for m in self.matcher.match(vectors)]
        else:
            faces = [(None, float("inf"))] * len(vectors)
        t3 = time.perf_counter()
        return faces, {"detect": t1 - t0, "embed": t2 - t1, "match": t3 - t2}


def _pkg_resources_shim() -> None:
    """face_recognition_models 0.3.0 finds its model files with ``pkg_resources``, which
    setuptools >= 81 no longer ships; give it the one function it calls."""
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        import importlib.resources
        import types

        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, name: str(importlib.resources.files(package).joinpath(name))  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim


# -- the measurement ---------------------------------------------------------------------------
def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0), so the video loop's peak is measured
    without the enrollment photos'."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _frames(source: str, limit: int | None) -> Generator[np.ndarray, None, None]:
    import cv2

    capture = cv2.VideoCapture(source)
    try:
        count = 0
        while limit is None or count < limit:
            ok, frame = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            count += 1
    finally:
        capture.release()


class _PhotoEmbedder:
    """What :func:`streamrec.verify.evaluate.evaluate_pairs` needs from a model (``analyse``),
    for a peer: the photo loaded as ours are (:func:`streamrec.images.load_image`), then the
    peer's own way to embed the face of a photo. Each photo is embedded once (enrollment and the
    pair list share photos)."""

    def __init__(self, system: Any) -> None:
        self.system = system
        self.done: dict[Path, Any] = {}

    def analyse(self, paths: list[Path], embed: str = "main") -> Iterator[Any]:
        from streamrec.faces import ImageFaces
        from streamrec.images import ImageError, load_image

        for path in map(Path, paths):
            if path not in self.done:
                try:
                    image = load_image(path)
                except ImageError as exc:
                    self.done[path] = ImageFaces(path, error=str(exc))
                else:
                    vector = self.system.embed_photo(image.rgb)
                    embeddings = np.zeros((0, 1), np.float32) if vector is None else np.asarray(vector, np.float32)[None]
                    self.done[path] = ImageFaces(path, embeddings=embeddings, size=image.original_size)
            yield self.done[path]


def _enroll_peer(photos: _PhotoEmbedder, people: dict[str, list[str]]) -> dict[str, Any]:
    names, vectors, enrolled, refused = [], [], {}, {}
    for name, paths in people.items():
        enrolled[name] = 0
        for result in photos.analyse([Path(p) for p in paths]):
            if result.error or not len(result.embeddings):
                refused[str(result.path)] = result.error or "no face found"
                continue
            names.append(name)
            vectors.append(result.embeddings[0])
            enrolled[name] += 1
    photos.system.enroll(names, vectors)
    return {"photos": enrolled, "refused": refused}


def _pairs_report(models: Any, pairs: list[list[Any]]) -> dict[str, Any]:
    from streamrec.verify.evaluate import evaluate_pairs
    from streamrec.verify.pairs import Pair, PairList

    pair_list = PairList([Pair(Path(a), Path(b), bool(same), int(fold)) for a, b, same, fold in pairs], 1 + max(p[3] for p in pairs))
    start = time.perf_counter()
    try:
        report = evaluate_pairs(models, pair_list).to_json()
    except ValueError as exc:
        return {"error": str(exc)}
    report["seconds"] = time.perf_counter() - start
    return report


def _ms(seconds: list[float]) -> dict[str, float] | None:
    if not seconds:
        return None
    ordered = np.sort(np.asarray(seconds)) * 1e3
    return {
        "median": float(np.median(ordered)),
        "mean": float(ordered.mean()),
        "p10": float(ordered[int(0.1 * (len(ordered) - 1))]),
        "p90": float(ordered[round(0.9 * (len(ordered) - 1))]),
    }


def _first_frame(source: str) -> np.ndarray:
    frames = _frames(source, 1)
    first = next(frames, None)
    frames.close()
    if first is None:
        raise RuntimeError(f"{source}: no frame could be decoded")
    return first


def _load(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import cv2

    cv2.setNumThreads(spec["threads"])
    factories: dict[str, Callable[[dict[str, Any]], Any]] = {
        "face_recognition": _FaceRecognition, "facenet_pytorch": _FacenetPytorch, "streamrec": _Streamrec,
    }
    factory = factories[spec["system"]]
    start = time.perf_counter()
    try:
        system = factory(spec)
    except Exception as exc:  # noqa: BLE001 - any failure to load means "not available here"
        return None, {"system": spec["system"], "available": False, "reason": f"{type(exc).__name__}: {exc}".strip()}
    return system, {"system": system.name, "available": True, **system.info, "load_s": time.perf_counter() - start}


def run_photos(spec: dict[str, Any]) -> dict[str, Any]:
    """The offline part: enroll the people (kept in ``spec["workdir"]`` for the video phase),
    score the photos' pair list and the ``--pairs`` list, and for facenet_pytorch check its weights against our ONNX FaceNet."""
    system, result = _load(spec)
    if system is None:
        return result
    workdir = Path(spec["workdir"])
    people = spec.get("people") or {}
    photos = None if system.name == "streamrec" else _PhotoEmbedder(system)
    if people:
        _progress(f"[{system.name}] enrolling {sum(len(v) for v in people.values())} photos of {len(people)} people")
        if photos is None:
            result["enrolled"] = system.enroll_folders(people, workdir / "watchlist")
        else:
            result["enrolled"] = _enroll_peer(photos, people)
            np.savez(workdir / "enrolled.npz", names=np.array(photos.system.known_names, dtype=str), vectors=photos.system.known)
    models = system.models if photos is None else photos
    if spec.get("pairs"):
        _progress(f"[{system.name}] embedding the pair list's photos")
        result["verification"] = _pairs_report(models, spec["pairs"])
    if spec.get("pair_file"):
        _progress(f"[{system.name}] embedding the photos of the --pairs list ({len(spec['pair_file'])} pairs)")
        result["verification_pairs"] = _pairs_report(models, spec["pair_file"])
    if system.name == "facenet_pytorch":
        result["weights_check"] = system.weights_check(spec.get("engines"), _first_frame(spec["source"]))
    return result


def run_video(spec: dict[str, Any]) -> dict[str, Any]:
    """The streaming part, in a process that only loads the models and the enrolled people:
    every frame in order, timed; memory; identities."""
    system, result = _load(spec)
    if system is None:
        return result
    result["rss_loaded_mb"] = _status_mb("VmRSS")
    workdir = Path(spec["workdir"])
    if system.name == "streamrec":
        system.open_watchlist(workdir / "watchlist")
    elif (workdir / "enrolled.npz").is_file():
        with np.load(workdir / "enrolled.npz") as saved:
            system.enroll([str(n) for n in saved["names"]], list(saved["vectors"]))
    first = _first_frame(spec["source"])
    system.process(first)  # warm-up (lazy initialisation, first-call allocations): not timed
    peak_reset = _reset_peak_rss()
    digest = hashlib.sha256()
    per_frame: dict[str, list[Any]] = {"ms": [], "faces": [], "names": [], "distances": []}
    stages: dict[str, list[float]] = {"detect": [], "embed": [], "match": []}
    cpu = 0.0
    _progress(f"[{system.name}] processing frames")
    for index, frame in enumerate(_frames(spec["source"], spec.get("frames"))):
        digest.update(frame.tobytes())
        cpu0, wall0 = time.process_time(), time.perf_counter()
        faces, split = system.process(frame)
        wall, cpu = time.perf_counter() - wall0, cpu + time.process_time() - cpu0
        per_frame["ms"].append(round(wall * 1e3, 3))
        per_frame["faces"].append(len(faces))
        per_frame["names"].append([name for name, _ in faces])
        per_frame["distances"].append([round(d, 4) if np.isfinite(d) else None for _, d in faces])
        for key, value in split.items():
            stages[key].append(value)
        if index % 50 == 49:
            _progress(f"[{system.name}] {index + 1} frames")
    result["peak_rss_mb"] = _status_mb("VmHWM") if peak_reset else None
    result["peak_rss_mb_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    frames_done = len(per_frame["ms"])
    total = sum(per_frame["ms"]) / 1e3
    faces_total = sum(per_frame["faces"])
    result.update(
        frames=frames_done,
        frames_sha256=digest.hexdigest(),
        processing_s=total,
        fps=frames_done / total if total > 0 else 0.0,
        frame_ms=_ms([ms / 1e3 for ms in per_frame["ms"]]),
        fps_median=1e3 / float(np.median(per_frame["ms"])) if frames_done else 0.0,
        stage_ms={key: _ms(values) for key, values in stages.items()},
        stage_share={key: (sum(values) / total if total > 0 else 0.0) for key, values in stages.items()},
        embed_ms_per_face=(1e3 * sum(stages["embed"]) / faces_total) if faces_total else None,
        cpu_cores_used=cpu / total if total > 0 else 0.0,
        faces=faces_total,
        faces_per_frame=faces_total / frames_done if frames_done else 0.0,
        frames_with_faces=sum(1 for n in per_frame["faces"] if n),
        per_frame=per_frame,
    )
    if system.name == "facenet_pytorch" and not spec.get("people"):
        result["weights_check"] = system.weights_check(spec.get("engines"), first)
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--convert-facenet":
        try:
            info = convert_facenet_weights(Path(args[1]))
        except Exception as exc:  # noqa: BLE001 - reported to the parent as the reason
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(info))
        return 0
    if len(args) != 2:
        print("usage: python -m streamrec.bench.peer_workers SPEC.json RESULT.json | --convert-facenet OUT.pt", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text())
    try:
        result = run_photos(spec) if spec["phase"] == "photos" else run_video(spec)
    except Exception as exc:  # noqa: BLE001 - a crash mid-run is reported, not raised in the parent
        result = {"system": spec.get("system"), "available": True, "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc()}
    Path(args[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
