"""Set up the demo's own data directory: the clip, the enrollment photo and the watchlist.

The demo never touches the user's watchlist: everything lives in ``DATA_DIR/demo``. The files
are made once and reused, so a second ``streamrec demo`` starts at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streamrec.demo.clip import enrollment_photo, render_clip
from streamrec.faces import FaceModels
from streamrec.match.enroll import enroll_photos
from streamrec.match.store import Watchlist

__all__ = ["ENROLLED_NAME", "NOT_ENROLLED", "DemoFiles", "prepare_demo"]

#: who the scikit-image astronaut is (NASA portrait), enrolled from a different crop
ENROLLED_NAME = "Eileen Collins"
#: shown in the clip, never enrolled: must come out as unknown
NOT_ENROLLED = "Grace Hopper"


@dataclass(frozen=True)
class DemoFiles:
    """What the demo runs on."""

    data_dir: Path  #: the demo's data directory (watchlist, journal, logs)
    clip: Path  #: the rendered clip
    photo: Path  #: the enrollment photo


def prepare_demo(folder: Path, models: FaceModels) -> DemoFiles:
    """Render the clip and enroll :data:`ENROLLED_NAME` in ``folder`` unless done before.

    Raises ``RuntimeError`` when the enrollment photo yields no usable face (the models or
    the packaged photo are broken: the demo could show nothing true)."""
    clip = folder / "clip.mp4"
    if not clip.is_file():
        render_clip(clip)
    photo = folder / "enroll" / "eileen_collins.jpg"
    if not photo.is_file():
        enrollment_photo(photo)
    store = Watchlist(folder)
    try:
        if store.resolve(ENROLLED_NAME) is None:
            report = enroll_photos(store, models, ENROLLED_NAME, [photo])
            if report.enrolled is None:
                raise RuntimeError(f"cannot enroll the demo photo {photo}: {report.photos[0].refused}")
    finally:
        store.close()
    return DemoFiles(folder, clip, photo)
