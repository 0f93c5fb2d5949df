"""Helpers for the render and web tests: real photos as video frames, the overlays the
inference stage would send for them, and stage processes started and stopped by PID."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from streamrec.bus.messages import Overlay
from streamrec.images import load_image
from streamrec.pipeline.stage import Stage, run_stage

PEOPLE = ("barack_obama", "joe_biden", "kit_harington")


def video_frame(path: Path, width: int, height: int) -> np.ndarray:
    """A photo as a ``width`` x ``height`` RGB video frame (centre crop to the aspect, then resize)."""
    rgb = load_image(path, max_side=2 * max(width, height)).rgb
    rows, cols = rgb.shape[:2]
    if cols * height > rows * width:
        keep = rows * width // height
        rgb = rgb[:, (cols - keep) // 2 : (cols - keep) // 2 + keep]
    else:
        keep = cols * height // width
        rgb = rgb[(rows - keep) // 2 : (rows - keep) // 2 + keep]
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def photo_frames(faces_dir: Path, width: int, height: int) -> list[np.ndarray]:
    """One frame per photo of a few people: consecutive frames clearly differ."""
    paths = [path for person in PEOPLE for path in sorted((faces_dir / person).glob("*.jpg"))]
    return [video_frame(path, width, height) for path in paths]


def face(box: list[float], label: str, known: bool, score: float = 0.9, track_id: int = 1) -> dict[str, Any]:
    return {"box": box, "track_id": track_id, "label": label, "score": score, "known": known}


def centre_box(width: int, height: int) -> list[float]:
    """Where a face sits in the test frames: the middle of the picture."""
    return [0.38 * width, 0.22 * height, 0.62 * width, 0.78 * height]


def overlay(source: str, index: int, frame: np.ndarray, faces: list[dict[str, Any]], fps: float = 12.5) -> Overlay:
    height, width = frame.shape[:2]
    return Overlay(source, index, time.time(), height, width, fps, faces)


def start_stage(stage: Stage) -> multiprocessing.process.BaseProcess:
    """Run ``stage`` in its own process, as the supervisor does."""
    process = multiprocessing.get_context("spawn").Process(target=run_stage, args=(stage,), name=f"test {stage.name}")
    process.start()
    return process


def stop_stage(process: multiprocessing.process.BaseProcess) -> None:
    """SIGTERM (the stage's clean stop), then SIGKILL if it does not end in time."""
    process.terminate()
    process.join(10)
    if process.is_alive():
        process.kill()
        process.join()
