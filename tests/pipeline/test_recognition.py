"""The inference stage's face work on real photos with the real engines and a real watchlist,
without processes or sockets: the detection schedule, decisions, a track split at a scene cut,
and the events and overlays made of them."""

from __future__ import annotations

import logging
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamrec.bus.messages import FrameHeader
from streamrec.config.model import DetectorConfig, RunConfig, SourceConfig
from streamrec.faces import FaceModels, ModelsConfig
from streamrec.match.matcher import Matcher
from streamrec.pipeline.batching import Frame
from streamrec.pipeline.outputs import SourceOutput, decision_event, overlay, track_end_event
from streamrec.pipeline.recognition import Decided, Ended, Outcome, Recognition
from tests.pipeline.conftest import enroll_people

OBAMA, BIDEN, DOG = "faces/barack_obama/1.jpg", "faces/joe_biden/1.jpg", "nonfaces/trt_dog.jpg"


class _Stats:
    """What a stage keeps of the counts and latencies it is told."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.samples: dict[str, list[float]] = defaultdict(list)

    def count(self, name: str, amount: int = 1) -> None:
        self.counts[name] += amount

    def observe(self, name: str, seconds: float) -> None:
        self.samples[name].append(seconds)


@pytest.fixture(scope="module")
def watchlist(faces_dir: Path, models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A watchlist of Barack Obama and Joe Biden."""
    folder = tmp_path_factory.mktemp("people")
    for person in ("barack_obama", "joe_biden"):
        shutil.copytree(faces_dir / person, folder / person)
    data_dir = tmp_path_factory.mktemp("data")
    enroll_people(folder, data_dir, models)
    return data_dir


def _pixels(shared_data: Path, name: str) -> np.ndarray:
    """The photo as a 480x640 camera frame (both people's faces then overlap, as at a cut)."""
    bgr = cv2.imread(str(shared_data / name))
    assert bgr is not None
    return cv2.cvtColor(cv2.resize(bgr, (480, 640)), cv2.COLOR_BGR2RGB)


def _frame(source: str, index: int, ts: float, pixels: np.ndarray) -> Frame:
    return FrameHeader(source, index, ts, *pixels.shape[:2]), pixels


def _recognition(models, watchlist: Path, sources: list[str], **detector) -> tuple[Recognition, _Stats]:
    config = RunConfig(sources=[SourceConfig(url=str(i), name=name) for i, name in enumerate(sources)], detector=DetectorConfig(**detector))
    stats = _Stats()
    ids = iter(range(1, 1000))
    return Recognition(config, models, Matcher(watchlist, config.matcher.threshold), ids.__next__, stats), stats


def _batch(work: Recognition, frames: dict[str, Frame]) -> list[Outcome]:
    """What the stage does with a batch, less the sending."""
    found = work.detect(frames)
    outcomes: list[Outcome] = []
    chosen = []
    for name, frame in frames.items():
        ended, wanted = work.track(name, frame, found[name])
        outcomes += ended
        chosen += wanted
    return outcomes + work.recognise(chosen)


def test_the_whole_cascade_runs_every_full_every_frames_and_whenever_there_is_no_track(shared_data, models, watchlist):
    work, stats = _recognition(models, watchlist, ["door", "yard"], full_every=3)
    face, dog = _pixels(shared_data, OBAMA), _pixels(shared_data, DOG)
    per_frame = []
    for i in range(7):
        before = stats.counts.copy()
        _batch(work, {"door": _frame("door", i, i * 0.1, face), "yard": _frame("yard", i, i * 0.1, dog)})
        per_frame.append((stats.counts - before)["detections_tracked"])
    # the door's tracked faces are re-detected two frames in three; the yard has none to re-detect
    assert per_frame == [0, 1, 1, 0, 1, 1, 0]
    assert stats.counts["detections_full"] == 7 + 3
    faces = len(models.detect(face, work.sources["door"].min_face_size)[0])
    assert faces and stats.counts["faces"] == 7 * faces  # re-detection finds every face again
    assert len(work.sources["door"].tracker.tracks) == faces and not work.sources["yard"].tracker.tracks


def test_a_scene_cut_splits_the_track_and_the_new_face_is_decided_afresh(shared_data, models, watchlist):
    work, stats = _recognition(models, watchlist, ["door"])
    obama, biden = _pixels(shared_data, OBAMA), _pixels(shared_data, BIDEN)
    first = _batch(work, {"door": _frame("door", 0, 0.0, obama)})
    named = [o for o in first if isinstance(o, Decided) and o.decision.type == "match"]
    assert [o.decision.name for o in named] == ["barack_obama"]
    old = named[0].track
    # the face that made the decision, for the face library: a crop of the face and its embedding
    sample = named[0].face
    assert sample is not None and sample.ts == 0.0 and sample.crop.dtype == np.uint8 and sample.crop.shape[2] == 3
    assert Matcher(watchlist).match(sample.vector[None])[0].name == "barack_obama"
    assert old.state.best_face is sample
    for i, ts in enumerate((0.4, 0.8), start=1):  # the same face: no embedding is due, nothing new
        assert _batch(work, {"door": _frame("door", i, ts, obama)}) == []
    # the cut, while the track lives (max_missed_s) and its next embedding is due (embed_interval_s)
    cut = _batch(work, {"door": _frame("door", 3, 1.5, biden)})
    ended = [o for o in cut if isinstance(o, Ended)]
    decided = [o for o in cut if isinstance(o, Decided)]
    assert [o.track for o in ended] == [old] and stats.counts["track_splits"] == 1
    assert len(decided) == 1 and decided[0].decision.name == "joe_biden"
    assert cut.index(ended[0]) < cut.index(decided[0])  # the old track ends before the new one is named
    new = decided[0].track
    assert new.id > old.id and new.id in work.sources["door"].tracker.tracks and old.id not in work.sources["door"].tracker.tracks

    started = track_end_event(ended[0])
    assert started is not None and (started.type, started.track_id, started.name) == ("track_end", old.id, "barack_obama")
    event = decision_event(decided[0])
    assert (event.type, event.track_id, event.name, event.frame_index, event.capture_ts) == ("match", new.id, "joe_biden", 3, 1.5)
    picture, not_drawn = overlay(decided[0].header, work.sources["door"].tracker.tracks.values(), 12.0)
    labels = {face.track_id: face.label for face in picture.faces}
    assert labels[new.id] == "joe_biden" and old.id not in labels and not_drawn == 0

    closing = work.end("door")  # the camera stopped
    assert [o.track for o in closing] == [new] and not work.sources["door"].tracker.tracks
    last = track_end_event(closing[0])
    assert last is not None and (last.track_id, last.name) == (new.id, "joe_biden")


@pytest.fixture
def small_pnet_models(engine_dir: Path) -> FaceModels:
    """The real engines, with a P-Net that takes pyramid levels up to 400 px a side, as TensorRT's
    takes them up to 1153 px: a 640 px frame fits at min face size 20 (a 385 px first level),
    not at 12 (641 px)."""
    models = FaceModels(ModelsConfig(max_side=None), engine_dir)
    models.nets[0].max_input_side = 400
    return models


def test_a_camera_whose_frames_are_too_large_gets_no_faces_said_once_and_the_others_go_on(
    shared_data, small_pnet_models, watchlist, caplog: pytest.LogCaptureFixture
):
    near, far = SourceConfig(url="0", name="near", min_face_size=12), SourceConfig(url="1", name="far")
    config = RunConfig(sources=[near, far])
    stats = _Stats()
    work = Recognition(config, small_pnet_models, Matcher(watchlist), iter(range(1, 1000)).__next__, stats)
    face = _pixels(shared_data, OBAMA)
    with caplog.at_level(logging.ERROR, logger="streamrec.pipeline.recognition"):
        for i in range(3):
            found = work.detect({name: _frame(name, i, i * 0.1, face) for name in ("near", "far")})
            assert not len(found["near"]) and len(found["far"])
    assert stats.counts["frames_too_large[near]"] == 3 and "frames_too_large[far]" not in stats.counts
    refusals = [r.getMessage() for r in caplog.records]
    assert len(refusals) == 1 and "source near:" in refusals[0]
    assert "480x640 frames are too large" in refusals[0]
    assert "takes frames up to" in refusals[0] and "\n" not in refusals[0]


def test_the_frame_rate_counts_the_frames_of_its_window_and_overlays_keep_to_render_fps():
    output = SourceOutput()
    assert [output.processed(t) for t in (10.0, 10.5, 11.0)] == [0.0, 2.0, 2.0]
    assert output.processed(13.5) == 0.0  # the earlier frames left the two-second window
    assert [output.overlay_due(t, 2.0) for t in (20.0, 20.2, 20.5)] == [True, False, True]
