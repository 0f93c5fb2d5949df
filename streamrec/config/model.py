"""The configuration, section by section; every field has a default and a checked range.

``check()`` methods raise ``ValueError("field: reason")``; the loader prefixes the section, so a
user sees ``tracker.max_missed_s: must be > 0 (got -1)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BatchConfig",
    "DetectorConfig",
    "MatcherConfig",
    "OutputsConfig",
    "PipelineConfig",
    "RunConfig",
    "SourceConfig",
    "TrackerConfig",
]


def _positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name}: must be {'>= 0' if allow_zero else '> 0'} (got {value})")


def _fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: must be between 0 and 1 (got {value})")


def _loopback_default(name: str, address: str) -> None:
    if not address:
        raise ValueError(f"{name}: must not be empty")


@dataclass
class PipelineConfig:
    """``[pipeline]``: where state lives and how inference runs."""

    data_dir: str = ""  #: empty: --data-dir, else $STREAMREC_DATA, else ~/.local/share/streamrec
    backend: str = "onnxruntime"
    threads: int = 0  #: inference threads; 0: every core this process may use
    precision: str = "fp32"  #: FaceNet engine: fp32 or int8

    def check(self) -> None:
        _positive("threads", self.threads, allow_zero=True)
        if self.precision not in ("fp32", "int8"):
            raise ValueError(f"precision: must be 'fp32' or 'int8' (got {self.precision!r})")


@dataclass
class DetectorConfig:
    """``[detector]``: MTCNN settings for every source (a source may override the face size)."""

    min_face_size: float = 40.0
    thresholds: list[float] = field(default_factory=lambda: [0.6, 0.7, 0.7])
    #: run the whole cascade on one frame in this many; in between, only its last net (O-Net)
    #: re-detects the tracked faces where they are predicted to be (a fraction of the cost).
    #: New faces are found within this many frames. 1: the whole cascade on every frame.
    full_every: int = 3

    def check(self) -> None:
        _positive("full_every", self.full_every)
        if self.min_face_size < 12:
            raise ValueError(f"min_face_size: must be >= 12 (got {self.min_face_size})")
        if len(self.thresholds) != 3:
            raise ValueError(f"thresholds: expected 3 probabilities (got {len(self.thresholds)})")
        for value in self.thresholds:
            _fraction("thresholds", value)


@dataclass
class BatchConfig:
    """``[batch]``: the central batcher sends frames to the detector when it holds a new frame
    from every live source, or ``max_wait_ms`` after the first one arrived."""

    max_wait_ms: float = 25.0
    max_frames: int = 16

    def check(self) -> None:
        _positive("max_wait_ms", self.max_wait_ms)
        _positive("max_frames", self.max_frames)


@dataclass
class TrackerConfig:
    """``[tracker]``: face tracks, and when a track's face is embedded."""

    iou_threshold: float = 0.3  #: minimum overlap to continue a track
    max_missed_s: float = 1.0  #: a track ends after this long without its face
    min_face_px: float = 40.0  #: faces smaller than this are tracked but never embedded
    min_sharpness: float = 25.0  #: Laplacian variance below this: too blurry to embed
    embed_interval_s: float = 1.0  #: re-embed a track at least this often while it lasts
    improve_factor: float = 1.25  #: ... and whenever its face quality grows by this factor
    min_gap_s: float = 0.2  #: never embed the same track more often than this
    max_embeddings: int = 12  #: per track
    #: a track whose new embedding is this far from its previous one has changed person (a
    #: scene cut): it is split in two. About the 5th percentile of distances between different
    #: people on LFW View 1, and above nearly all distances within one person's track.
    switch_distance: float = 1.2
    #: embed every tracked face on every frame, ignoring the quality gates and skips above
    #: (the naive pipeline; what ``streamrec bench pipeline --no-skips`` compares against)
    embed_every_frame: bool = False

    def check(self) -> None:
        _fraction("iou_threshold", self.iou_threshold)
        for name in ("max_missed_s", "min_face_px", "embed_interval_s", "min_gap_s", "max_embeddings", "switch_distance"):
            _positive(name, getattr(self, name))
        _positive("min_sharpness", self.min_sharpness, allow_zero=True)
        if self.improve_factor < 1.0:
            raise ValueError(f"improve_factor: must be >= 1 (got {self.improve_factor})")


@dataclass
class MatcherConfig:
    """``[matcher]``: how a track's embeddings become a decision (streamrec/track/identity.py).
    The defaults keep people who are not enrolled from being named: against the nine people of
    ../shared/data/faces, none of 1,549 LFW faces of 963 people not enrolled voted for anyone
    and no pseudo-track of them was named, where a threshold of 1.12 (the best one for LFW
    pairs) named 7.7% (docs/accuracy.md, "Open-set identification")."""

    #: an embedding votes for its nearest person below this distance ...
    threshold: float = 0.9
    #: ... when the nearest other person is at least this much farther (0: no such condition);
    #: every vote measured for an enrolled person had a margin of 0.22 or more
    margin: float = 0.1
    votes: int = 2  #: agreeing votes needed to name a person ...
    sure_distance: float = 0.8  #: ... unless one is closer than this
    #: a track is named only when its score reaches this (0-1: the median distance of its votes
    #: for the person, 1.12 -> 0 and 0.6 -> 1; under the default threshold every match scores
    #: above 0.42)
    min_score: float = 0.0
    unknown_after: int = 3  #: embeddings that did not vote before the track is called unknown

    def check(self) -> None:
        _positive("threshold", self.threshold)
        _positive("margin", self.margin, allow_zero=True)
        _positive("votes", self.votes)
        _fraction("min_score", self.min_score)
        _positive("unknown_after", self.unknown_after)
        if self.sure_distance > self.threshold:
            raise ValueError(f"sure_distance: must be <= threshold ({self.threshold}) (got {self.sure_distance})")


@dataclass
class OutputsConfig:
    """``[outputs]``: where results are published. Loopback unless configured otherwise."""

    events: str = "tcp://127.0.0.1:5571"  #: ZeroMQ PUB of events, topic per event type
    frames: str = "tcp://127.0.0.1:5572"  #: ZeroMQ PUB of overlaid JPEG frames, topic = source
    http: str = "127.0.0.1:8080"  #: door page, MJPEG and /metrics; empty: no web server
    render_fps: float = 15.0  #: overlaid frames per second and source, at most
    jpeg_quality: int = 80
    #: seconds the door page keeps a name (or "unknown") after that face left the picture
    door_hold_s: float = 3.0

    def check(self) -> None:
        for name in ("events", "frames"):
            _loopback_default(name, getattr(self, name))
        _positive("render_fps", self.render_fps)
        _positive("door_hold_s", self.door_hold_s)
        if not 10 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality: must be between 10 and 100 (got {self.jpeg_quality})")


@dataclass
class SourceConfig:
    """``[[sources]]``: one camera, file or stream."""

    url: str = ""  #: webcam index ("0"), file path, rtsp://, http(s):// MJPEG
    name: str = ""  #: label in events and pages; default: derived from the URL
    fps: float = 0.0  #: cap on frames taken from this source per second; 0: none
    min_face_size: float = 0.0  #: overrides [detector] min_face_size when > 0
    loop: bool = False  #: replay a video file forever
    fast: bool = False  #: read a video file as fast as the pipeline takes frames

    @property
    def label(self) -> str:
        """The source's name in events, pages and logs: ``name``, else the URL without
        credentials, query or scheme noise (a file's stem for files)."""
        if self.name:
            return self.name
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        if parts.scheme in ("rtsp", "rtsps", "http", "https"):
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
            return f"{host}{port}{parts.path}".rstrip("/") or self.url
        if self.url.isdigit():
            return f"camera{self.url}"
        return Path(self.url).stem or self.url

    def check(self) -> None:
        if not self.url:
            raise ValueError("url: must not be empty")
        _positive("fps", self.fps, allow_zero=True)
        _positive("min_face_size", self.min_face_size, allow_zero=True)


@dataclass
class RunConfig:
    """A whole configuration file."""

    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    matcher: MatcherConfig = field(default_factory=MatcherConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    sources: list[SourceConfig] = field(default_factory=list)
