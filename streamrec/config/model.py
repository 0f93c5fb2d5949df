"""The configuration schema: one pydantic model per TOML section, every key with its default, its
bounds and its description (the only place they are written; ``configs/default.toml`` and
``docs/configuration.md`` are generated from here by :mod:`streamrec.config.generate`).

A new key is one ``Field`` line in its section. Bounds are what makes sense for the key, not
merely what does not crash: a distance between L2-normalised embeddings lies in [0, 2], a batch
that waits a second is no longer real time. Rules between keys are validators that name the key
they report on, so every problem reads ``section.key: reason (got VALUE)``; each validator
reports every rule it finds broken, not only the first, and names the other keys each rule reads
(so that a check can still run the rule when some other key of the file is wrong:
:func:`streamrec.config.load.parse_config`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from streamrec.backends import TritonOptions, default_threads
from streamrec.backends.choose import DETECTION_MEANINGS, PRECISION_MEANINGS, BackendChoice, PrecisionChoice
from streamrec.capture.source import SourceError, parse_source
from streamrec.config.addresses import (
    BrokerAddress,
    HttpAddress,
    LinkEndpoint,
    ZmqEndpoint,
    binds_beyond_loopback,
    clashes,
    parse_broker_address,
    parse_http_address,
    parse_zmq_endpoint,
)
from streamrec.door.actions import Action
from streamrec.embed.facenet import MAX_DISTANCE
from streamrec.faces import DetectionPrecision

__all__ = [
    "MAX_FACE",
    "MAX_SOURCES",
    "MAX_WORKERS",
    "MIN_FACE",
    "AuthConfig",
    "BatchConfig",
    "BrokenRules",
    "DetectorConfig",
    "DoorConfig",
    "LinksConfig",
    "MatcherConfig",
    "MqttConfig",
    "OutputsConfig",
    "PipelineConfig",
    "PrivacyConfig",
    "RuleError",
    "RunConfig",
    "SourceConfig",
    "TrackerConfig",
    "TritonConfig",
    "WorkerLinks",
]

#: Twelve pixels is P-Net's window, the smallest face MTCNN can see without upscaling; no frame
#: the pipeline takes has a side longer than 8192 (8K video), so no face can be larger.
MIN_FACE, MAX_FACE = 12, 8192
#: Each source is a capture process; a batch holds at most one frame of each ([batch] max_frames).
MAX_SOURCES = 256
#: the inference workers a pipeline may have ([pipeline] workers, [[links.workers]])
MAX_WORKERS = 32
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


Loc = tuple[str | int, ...]


class RuleError(ValueError):
    """A broken rule between keys, found by a model validator: ``loc`` is the key it reports on
    (``("matcher", "votes")``) and ``value`` that key's value, as a field's own error has them;
    ``reads`` are the other keys (or whole tables) the rule depends on, so that it is not reported
    while one of them is itself wrong (the rule would then be judged against a default)."""

    def __init__(self, loc: Loc, value: object, message: str, reads: tuple[Loc, ...] = ()) -> None:
        super().__init__(message)
        self.loc, self.value, self.reads = loc, value, reads


class BrokenRules(ValueError):
    """Every rule a model validator found broken (pydantic reports one error per validator; the
    check lists each rule on its own line)."""

    def __init__(self, rules: list[RuleError]) -> None:
        super().__init__("; ".join(map(str, rules)))
        self.rules = rules


def _rules(find: Callable[[Any], Iterator[RuleError]]) -> Any:
    """A model validator from a generator of the rules a model breaks: all of them are reported
    together, so fixing one does not merely reveal the next."""

    def check(self: Any) -> Any:
        broken = list(find(self))
        if broken:
            raise BrokenRules(broken)
        return self

    return model_validator(mode="after")(check)


class Section(BaseModel):
    """What every section shares: an unknown key is an error; TOML's types are taken as written
    (``1`` is not ``true``, ``"40"`` is not a number; a whole number is a number); numbers are
    finite; strings hold no control characters (they end up in logs, topics and pages); and a
    configuration never changes once checked: an override builds a new one, checked again."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False, validate_default=True)

    @field_validator("*")
    @classmethod
    def _printable(cls, value: Any) -> Any:
        if isinstance(value, str) and _CONTROL.search(value):
            raise ValueError("must not contain control characters (line breaks, tabs, escapes)")
        return value


def _at_most(key: str, other: str, why: str) -> Any:
    """A validator for a section: ``key`` must not exceed ``other``, a key declared before it
    (a rule that does not apply while ``other`` itself is invalid: that has its own error)."""

    def check(cls: type, value: float, info: ValidationInfo) -> float:
        limit = info.data.get(other)
        if limit is not None and value > limit:
            raise ValueError(f"must be at most {other} ({limit:g}): {why}")
        return value

    return field_validator(key)(classmethod(check))


def _together(section: str, first: str, second: str) -> Any:
    """A validator for a section: keys ``first`` and ``second`` (a certificate and its key) are
    given both, or neither; the error names the one missing."""

    def find(self: Any) -> Iterator[RuleError]:
        if bool(getattr(self, first)) != bool(getattr(self, second)):
            key = second if getattr(self, first) else first
            other = first if key == second else second
            yield RuleError((section, key), getattr(self, key), f"{first} and {second} go together: give both, or neither",
                            reads=((section, other),))

    return _rules(find)


def _threads(value: int) -> int:
    cores = default_threads()
    if value > cores:
        raise ValueError(f"must be a whole number between 0 and {cores}, the cores this process may use")
    return value


class PipelineConfig(Section):
    """[pipeline]: where state lives and how inference runs."""

    data_dir: Annotated[str, AfterValidator(os.path.expanduser)] = Field(
        default="",
        description="Folder of the watchlist, the event journal and the logs; a leading ~ is your home. "
        '"": --data-dir, else $STREAMREC_DATA, else ~/.local/share/streamrec.',
    )
    backend: BackendChoice = Field(
        default="auto",
        description="Inference backend that runs the MTCNN and FaceNet engines: auto (the fastest this machine "
        "runs whose accuracy holds: torch on an NVIDIA GPU, openvino with bf16 on a CPU with AVX-512 BF16 or AMX, "
        "else onnxruntime in int8; `streamrec run` says which it took and why); onnxruntime; openvino (the "
        "'openvino' extra; bf16 on CPUs with AVX-512 BF16 or AMX); tensorrt (the 'tensorrt' extra, on an NVIDIA "
        "GPU; not yet run on a GPU by the project); torch (the 'torch' extra: the whole detector and "
        "embedder, crops included, in PyTorch on the device); or triton (the 'triton' extra: the engines run "
        "on the Triton Inference Server of [triton]; never chosen by auto).",
    )
    device: str = Field(
        default="",
        description="Where the backend runs: cpu (onnxruntime, openvino, torch); gpu (openvino on an Intel GPU); "
        "cuda or cuda:N (tensorrt, torch: an NVIDIA GPU). \"\": the backend's own (cuda:0 for tensorrt, else "
        "cpu). Whether this machine has it is checked when the pipeline starts.",
    )
    threads: Annotated[int, AfterValidator(_threads)] = Field(
        default=0, ge=0,
        description="Inference threads; 0: every core this process may use. At most that many (its CPU "
        "affinity, as nproc counts them): more threads than cores only contend for them, and tens of "
        "thousands keep the engines from ever loading.",
        json_schema_extra={"allowed": "a whole number from 0 to the number of cores this process may use"},
    )
    precision: PrecisionChoice = Field(
        default="auto",
        description=f"How FaceNet computes: {PRECISION_MEANINGS}. Whether the backend and this machine compute "
        "in it is checked when the pipeline starts.",
    )
    workers: int = Field(
        default=1, ge=1, le=MAX_WORKERS,
        description="Inference workers `streamrec run` starts, sharing the cameras: each camera's frames go to "
        "one worker (chosen by hashing its name), so its tracks stay whole; when a worker dies its cameras move "
        "to the others until it is back. 1: one inference stage serves every camera. With [[links.workers]], "
        "their number (or leave it 1).",
    )
    model: str = Field(
        default="facenet", min_length=1,
        description="Which FaceNet embeds: facenet (the published one) or the name of a model `streamrec train` "
        "wrote into the engine folder. The watchlist must hold embeddings of the same model (enroll with "
        "--model NAME); both are checked when the pipeline starts.",
    )


def _host_port(value: str) -> str:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be host:port, the port a whole number from 1 to 65535")
    return value


class TritonConfig(Section):
    """[triton]: the Triton Inference Server that backend = "triton" sends its batches to
    (docs/triton.md); the other backends ignore it."""

    url: Annotated[str, AfterValidator(_host_port)] = Field(
        default="127.0.0.1:8001",
        description="The server's gRPC address, host:port (tritonserver's --grpc-port, 8001 by default).",
        json_schema_extra={"allowed": "host:port, the port from 1 to 65535"},
    )
    timeout_s: float = Field(
        default=5.0, gt=0, le=300,
        description="Each call to the server fails after this many seconds; the frames of a call that fails are "
        "lost, and calls resume once the server answers again (tried again after 0.25 s, doubling up to 8 s).",
    )
    tls: bool = Field(
        default=False,
        description="Talk to the server over TLS (its gRPC port started with --grpc-use-ssl).",
    )
    root_cert: Annotated[str, AfterValidator(os.path.expanduser)] = Field(
        default="",
        description='PEM certificates the server\'s certificate is checked against, with tls; "": the system\'s.',
    )
    client_cert: Annotated[str, AfterValidator(os.path.expanduser)] = Field(
        default="",
        description='PEM certificate (chain) this client presents when the server asks for one, with client_key.',
    )
    client_key: Annotated[str, AfterValidator(os.path.expanduser)] = Field(
        default="",
        description='PEM private key of client_cert (unencrypted).',
    )
    model_prefix: str = Field(
        default="", max_length=64,
        description="Put before each engine's name (pnet, rnet, onet, facenet...) to give the server's model "
        "name, so several deployments can share one server.",
    )

    _client_pair = _together("triton", "client_cert", "client_key")

    def options(self) -> TritonOptions:
        """What the triton backend is given: these keys, one for one."""
        return TritonOptions(**self.model_dump())


class DetectorConfig(Section):
    """[detector]: MTCNN settings for every source (a source may set its own min_face_size)."""

    min_face_size: float = Field(
        default=40.0, ge=MIN_FACE, le=MAX_FACE,
        description="Smallest face side looked for, in pixels; P-Net's work grows about 4x from 40 to 20. "
        "12 is P-Net's window, 8192 the longest frame side.",
    )
    thresholds: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default=[0.6, 0.7, 0.7], min_length=3, max_length=3,
        description="Face probability each MTCNN stage needs to keep a candidate: P-Net, R-Net, O-Net. "
        "At 0 every window would pass, at 1 none.",
    )
    precision: DetectionPrecision = Field(
        default="fp32",
        description=f"How MTCNN's R-Net and O-Net compute: {DETECTION_MEANINGS}. Whether the backend and this "
        "machine compute in it is checked when the pipeline starts.",
    )
    full_every: int = Field(
        default=3, ge=1, le=30,
        description="Run the whole cascade on one frame in this many; in between only its last net (O-Net) "
        "re-detects the tracked faces where they are predicted to be (a fraction of the cost). A new face "
        "is found within this many frames, hence at most 30 (a second at 30 fps). 1: the whole cascade "
        "on every frame.",
    )


class BatchConfig(Section):
    """[batch]: the central batcher sends frames to the detector when it holds a new frame from
    every live source, or max_wait_ms after the first one arrived."""

    max_wait_ms: float = Field(
        default=25.0, gt=0, le=1000,
        description="A batch leaves at the latest this many milliseconds after its first frame; a second "
        "at most, or results come too late to be live.",
    )
    max_frames: int = Field(
        default=16, ge=1, le=MAX_SOURCES,
        description="A batch leaves as soon as it holds this many frames (one per source).",
    )


class TrackerConfig(Section):
    """[tracker]: face tracks, and when a track's face is embedded."""

    iou_threshold: float = Field(
        default=0.3, gt=0, lt=1,
        description="Smallest overlap (intersection over union) of a face with a track's box that continues "
        "the track; at 0 any face would continue any track, at 1 none would.",
    )
    max_missed_s: float = Field(
        default=1.0, gt=0, le=60,
        description="A track ends after this many seconds without its face.",
    )
    min_face_px: float = Field(
        default=40.0, gt=0, le=MAX_FACE,
        description="Faces smaller than this (shorter box side in pixels) are tracked but never embedded.",
    )
    min_sharpness: float = Field(
        default=25.0, ge=0, le=1_000_000,
        description="Faces blurrier than this (variance of the Laplacian of the face at 64x64 grey; 25 is a "
        "usable floor on webcam video) are never embedded; 0 embeds faces however blurred. A million is "
        "about the most an 8-bit crop can reach.",
    )
    embed_interval_s: float = Field(
        default=1.0, gt=0, le=3600,
        description="Re-embed a track at least this often, in seconds, while it lasts ...",
    )
    improve_factor: float = Field(
        default=1.25, ge=1, le=100,
        description="... and whenever its face quality (size x sharpness x frontality) grows by this factor.",
    )
    min_gap_s: float = Field(
        default=0.2, gt=0, le=3600,
        description="Never embed the same track more often than this, in seconds; at most embed_interval_s.",
    )
    max_embeddings: int = Field(
        default=12, ge=1, le=1000,
        description="Embeddings per track, at most.",
    )
    switch_distance: float = Field(
        default=1.2, gt=0, le=MAX_DISTANCE,
        description="A track whose new embedding is this far from its previous one has changed person (a "
        "scene cut) and is split in two. About the 5th percentile of distances between different people "
        "on LFW View 1, above nearly all distances within one person's track; distances between "
        "embeddings lie between 0 and 2.",
    )
    embed_every_frame: bool = Field(
        default=False,
        description="Embed every tracked face on every frame, ignoring the quality gates and skips above: "
        "the naive pipeline `streamrec bench pipeline --no-skips` compares with.",
    )

    _gap_within_interval = _at_most("min_gap_s", "embed_interval_s", "a track is re-embedded that often")


class MatcherConfig(Section):
    """[matcher]: how a track's embeddings become a decision (streamrec/track/identity.py). The
    defaults keep people who are not enrolled from being named: against the nine people of
    ../shared/data/faces, none of 1,549 LFW faces of 963 people not enrolled voted for anyone and
    no pseudo-track of them was named, where a threshold of 1.12 (the best one for LFW pairs)
    named 7.7% (docs/accuracy.md, "Open-set identification")."""

    threshold: float = Field(
        default=0.9, gt=0, le=MAX_DISTANCE,
        description="An embedding votes for its nearest person below this distance (distances between "
        "embeddings lie between 0 and 2) ...",
    )
    margin: float = Field(
        default=0.1, ge=0, le=MAX_DISTANCE,
        description="... when the nearest other person is at least this much farther (0: no such "
        "condition); every vote measured for an enrolled person had a margin of 0.22 or more.",
    )
    votes: int = Field(
        default=2, ge=1, le=1000,
        description="Agreeing votes needed to name a person (at most [tracker] max_embeddings) ...",
    )
    sure_distance: float = Field(
        default=0.8, ge=0, le=MAX_DISTANCE,
        description="... unless one is closer than this (at most threshold).",
    )
    min_score: float = Field(
        default=0.0, ge=0, le=1,
        description="A track is named only when its score reaches this (0-1: the median distance of its "
        "votes for the person, 1.12 -> 0 and 0.6 -> 1; under the default threshold every match scores "
        "above 0.42).",
    )
    unknown_after: int = Field(
        default=3, ge=1, le=1000,
        description="Embeddings that did not vote before the track is called unknown (at most [tracker] "
        "max_embeddings).",
    )

    _sure_within_threshold = _at_most("sure_distance", "threshold", "a sure match is a match first")


class OutputsConfig(Section):
    """[outputs]: where results are published; on this machine only (loopback) unless set otherwise."""

    events: ZmqEndpoint = Field(
        default="tcp://127.0.0.1:5571",
        description="ZeroMQ PUB of events, one topic per event type.",
    )
    frames: ZmqEndpoint = Field(
        default="tcp://127.0.0.1:5572",
        description="ZeroMQ PUB of overlaid JPEG frames, topic = source name.",
    )
    http: HttpAddress = Field(
        default="127.0.0.1:8080",
        description='Door page, MJPEG video, /api/state and /metrics; "": no web server.',
    )
    render_fps: float = Field(
        default=15.0, ge=0.1, le=120,
        description="Overlaid frames per second and source, at most.",
    )
    jpeg_quality: int = Field(
        default=80, ge=10, le=100,
        description="JPEG quality of the overlaid frames.",
    )
    door_hold_s: float = Field(
        default=3.0, gt=0, le=3600,
        description='Seconds the door page keeps a name (or "unknown") after that face left the picture.',
    )

    @field_validator("frames", "http")
    @classmethod
    def _distinct(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            return value
        mine = parse_http_address(value) if info.field_name == "http" else parse_zmq_endpoint(value)
        for other in ("events", "frames"):
            taken = info.data.get(other) if other != info.field_name else None
            if taken and clashes(mine, parse_zmq_endpoint(taken)):
                raise ValueError(f"binds the same address as {other} ({taken})")
        return value

    def beyond_loopback(self) -> Iterator[tuple[str, str]]:
        """``(key, address)`` of each output other machines may connect to."""
        for key in ("events", "frames"):
            if binds_beyond_loopback(parse_zmq_endpoint(getattr(self, key))):
                yield key, getattr(self, key)
        if self.http and binds_beyond_loopback(parse_http_address(self.http)):
            yield "http", self.http


#: the internal links of ``streamrec.bus.sockets.Endpoints`` that ``[links]`` can place, in its order
LINKS = ("frames", "status", "overlays", "events_in", "stats", "monitor", "events_feed", "jpeg_feed")
CURVE = ("curve_server_key", "curve_server_secret", "curve_client_secret", "curve_clients")
#: what a rule over every link's address reads: each link key, and every worker's table
_EVERY_LINK: tuple[Loc, ...] = (*(("links", key) for key in LINKS), ("links", "workers"))
#: what a rule over the CURVE keys reads: all four
_EVERY_CURVE_KEY: tuple[Loc, ...] = tuple(("links", key) for key in CURVE)


def link_location(key: str) -> tuple[str | int, ...]:
    """Where a key of :meth:`LinksConfig.set_links` is in the file: ``workers[1].frames`` ->
    ``("links", "workers", 1, "frames")``."""
    table, _, link = key.partition("].")
    if not link:
        return ("links", key)
    return ("links", "workers", int(table.removeprefix("workers[")), link)


class WorkerLinks(Section):
    """[[links.workers]]: the two links of one inference worker, which it binds."""

    frames: LinkEndpoint = Field(default="", description="Frame messages, capture -> this worker.")
    status: LinkEndpoint = Field(default="", description="Source status changes, capture -> this worker.")

    @field_validator("frames", "status")
    @classmethod
    def _given(cls, value: str) -> str:
        if not value:
            raise ValueError("a worker binds both of its links: give tcp://HOST:PORT or ipc://PATH")
        return value


class LinksConfig(Section):
    """[links]: the links between stages. Left "", a link is an ipc:// socket in the run's private
    folder (every stage on this machine, started by `streamrec run`); set, the same address is
    bound by the stage named first and connected to by the others, so stages started with
    `streamrec stage` can run on several hosts (README.md, "Several hosts")."""

    frames: LinkEndpoint = Field(
        default="",
        description="Frame messages, capture -> inference (inference binds).",
    )
    status: LinkEndpoint = Field(
        default="",
        description="Source status changes, capture -> inference (inference binds).",
    )
    overlays: LinkEndpoint = Field(
        default="",
        description="Frames with their results, inference -> render (render binds).",
    )
    events_in: LinkEndpoint = Field(
        default="",
        description="Decisions, inference -> events (events binds).",
    )
    stats: LinkEndpoint = Field(
        default="",
        description="Statistics of every stage -> the supervisor (the supervisor binds; a stage whose "
        "statistics nobody receives drops them).",
    )
    monitor: LinkEndpoint = Field(
        default="",
        description="Every stage's statistics again, supervisor -> web, for /metrics (the supervisor binds).",
    )
    events_feed: LinkEndpoint = Field(
        default="",
        description="The published events again, events -> web (events binds).",
    )
    jpeg_feed: LinkEndpoint = Field(
        default="",
        description="The overlaid JPEG frames again, render -> web (render binds).",
    )
    frame_pixels: Literal["ring", "raw", "jpeg"] = Field(
        default="ring",
        description="How a frame's pixels reach the inference stage: ring (a shared-memory ring on this "
        "machine; only the frame's header crosses the frames link), raw (RGB bytes in the frame message: "
        "0.9 MB per 640x480 frame) or jpeg (JPEG at frame_quality in the frame message). raw or jpeg is "
        "required when capture and inference run on different hosts.",
    )
    frame_quality: int = Field(
        default=90, ge=10, le=100,
        description="JPEG quality of the frames sent with frame_pixels = jpeg.",
    )
    workers: list[WorkerLinks] = Field(
        default=[], max_length=MAX_WORKERS,
        description="Several inference workers, each binding its own frames and status links ([[links.workers]] "
        "tables; frames and status above are then left \"\"). Every capture connects to all of them and sends "
        "each camera to one (`streamrec stage inference --worker K` runs the K-th, from 1).",
        json_schema_extra={"allowed": f"[[links.workers]] tables with frames and status, at most {MAX_WORKERS}"},
    )
    curve_server_key: Annotated[str, AfterValidator(os.path.expanduser)] = Field(
        default="",
        description="CURVE on every link given an address (required when one is beyond this machine): the "
        "links' server certificate, public (NAME.key from `streamrec keys NAME`); every stage reads it. "
        '"": no CURVE.',
    )
    curve_server_secret: Annotated[str, AfterValidator(os.path.expanduser)] = Field(
        default="",
        description="The server certificate's secret half (NAME.key_secret); only the stages that bind a link "
        "read it.",
    )
    curve_client_secret: Annotated[str, AfterValidator(os.path.expanduser)] = Field(
        default="",
        description="This host's client certificate, secret (NAME.key_secret of its own `streamrec keys NAME`); "
        "the stages that connect to a link present it.",
    )
    curve_clients: Annotated[str, AfterValidator(os.path.expanduser)] = Field(
        default="",
        description="Folder of the public certificates (NAME.key) of the clients a binding stage lets in; any "
        "other connection is refused.",
    )

    @_rules
    def _distinct_and_reachable(self) -> Iterator[RuleError]:
        if self.workers:
            taken = next((key for key in ("frames", "status") if getattr(self, key)), None)
            if taken is not None:
                yield RuleError(("links", taken), getattr(self, taken), "with [[links.workers]] each worker has its "
                                f"own {taken} link: leave links.{taken} \"\"", reads=(("links", "workers"),))
        seen: list[tuple[str, str]] = []
        for key, address in self.set_links():
            clash = next((f"links.{other} ({taken})" for other, taken in seen
                          if clashes(parse_zmq_endpoint(address), parse_zmq_endpoint(taken))), None)
            if clash is not None:
                yield RuleError(link_location(key), address, f"binds the same address as {clash}", reads=_EVERY_LINK)
            seen.append((key, address))
        given = [key for key in CURVE if getattr(self, key)]
        if given and len(given) < len(CURVE):
            missing = next(key for key in CURVE if not getattr(self, key))
            yield RuleError(("links", missing), "", f"CURVE needs all of {', '.join(CURVE)} (`streamrec keys`)",
                            reads=_EVERY_CURVE_KEY)
        beyond = next((item for item in seen if binds_beyond_loopback(parse_zmq_endpoint(item[1]))), None)
        if beyond is not None and not given:
            yield RuleError(link_location(beyond[0]), beyond[1], "a link beyond this machine needs CURVE: set "
                            f"{', '.join(CURVE)} (`streamrec keys NAME --out DIR` makes the certificates)",
                            reads=_EVERY_LINK + _EVERY_CURVE_KEY)
        frames = [address for key, address in seen if key.endswith("frames")]
        if self.frame_pixels == "ring" and any(binds_beyond_loopback(parse_zmq_endpoint(a)) for a in frames):
            yield RuleError(("links", "frame_pixels"), self.frame_pixels, "a frames link beyond this machine needs "
                            'the pixels in the message: set frame_pixels = "raw" or "jpeg"',
                            reads=(("links", "frames"), ("links", "workers")))

    def set_links(self) -> Iterator[tuple[str, str]]:
        """``(key, address)`` of each link given an address (a worker's as ``workers[K].frames``,
        K from 0 as the file counts its tables)."""
        yield from ((key, getattr(self, key)) for key in LINKS if getattr(self, key))
        for index, worker in enumerate(self.workers):
            yield f"workers[{index}].frames", worker.frames
            yield f"workers[{index}].status", worker.status


class AuthConfig(Section):
    """[auth]: who may use the web server. Beyond loopback every page and API needs a login (a
    session cookie) or a bearer token; on loopback it stays open unless asked otherwise."""

    users_file: Annotated[str, AfterValidator(os.path.expanduser)] = Field(
        default="",
        description="The user file (`streamrec users add|remove|list|token` manage it; salted Argon2 password "
        'hashes and token hashes, mode 0600); a leading ~ is your home. "": users.json in the data directory.',
    )
    require_on_loopback: bool = Field(
        default=False,
        description="Ask for a login on a loopback address too, once the user file has a user. Off, the "
        "server on 127.0.0.1 is open to everyone who can run programs on this machine.",
    )
    session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30,
        description="A login lasts this many hours, then the browser is asked to log in again.",
    )
    login_failures: int = Field(
        default=5, ge=1, le=1000,
        description="Failed logins allowed per client address, and per user name, within login_window_s; "
        "beyond them logins are refused (429) until the window has passed.",
    )
    login_window_s: float = Field(
        default=300.0, gt=0, le=86400,
        description="The window, in seconds, over which failed logins are counted.",
    )
    tls_cert: Annotated[str, AfterValidator(os.path.expanduser)] = Field(
        default="",
        description='PEM certificate (chain) for HTTPS; with tls_key. "": plain HTTP.',
    )
    tls_key: Annotated[str, AfterValidator(os.path.expanduser)] = Field(
        default="",
        description='PEM private key of tls_cert (unencrypted). "": plain HTTP.',
    )

    _tls_pair = _together("auth", "tls_cert", "tls_key")


class PrivacyConfig(Section):
    """[privacy]: how long faces and events are kept (README.md, "Privacy")."""

    unknown_days: float = Field(
        default=30.0, ge=0, le=36500,
        description="Days a kept face crop (of a track decided unknown, or of a match, for the face library) is "
        "kept before the running pipeline removes it; 0: no face crop is kept.",
    )
    kept_faces: int = Field(
        default=1000, ge=0, le=1_000_000,
        description="Face crops kept at most, of each kind (unknown, match); the oldest go first.",
    )
    kept_mb: float = Field(
        default=100.0, gt=0, le=1_000_000,
        description="Megabytes of face crops kept at most, of each kind; the oldest go first.",
    )
    journal_days: float = Field(
        default=0.0, ge=0, le=36500,
        description="Days of events the journal keeps (whole UTC days: a day's file goes once its last event is "
        "older); 0: kept for ever.",
    )


def _source_url(url: str) -> str:
    if not url.strip():
        raise ValueError("must not be empty")
    try:
        parse_source(url, check_files=False)
    except SourceError as exc:
        raise ValueError(str(exc)) from None
    return url


def _zero_or_face_size(value: float) -> float:
    if value != 0 and not MIN_FACE <= value <= MAX_FACE:
        raise ValueError(f"must be 0 or a finite number between {MIN_FACE} and {MAX_FACE}")
    return value


class SourceConfig(Section):
    """[[sources]]: one camera, stream or video file; one table per source (--source adds more)."""

    url: Annotated[str, AfterValidator(_source_url)] = Field(
        description='Webcam index ("0"), video file, rtsp:// or rtsps:// URL, http(s):// MJPEG URL.',
        examples=["rtsp://camera.local/stream"],
        json_schema_extra={"allowed": "a webcam index (0 to 99), a file path, or an rtsp://, rtsps://, "
                           "http:// or https:// URL with a host"},
    )
    name: str = Field(
        default="", max_length=64,
        description='Label in events, pages and logs, distinct for every source; "": derived from the URL '
        "(without credentials).",
    )
    fps: float = Field(
        default=0.0, ge=0, le=1000,
        description="Cap on frames taken from this source per second; 0: none.",
    )
    min_face_size: Annotated[float, AfterValidator(_zero_or_face_size)] = Field(
        default=0.0, ge=0, le=MAX_FACE,
        description="Overrides [detector] min_face_size for this source; 0: use that one.",
        json_schema_extra={"allowed": f"0, or a finite number between {MIN_FACE} and {MAX_FACE}"},
    )
    loop: bool = Field(
        default=False,
        description="Replay a video file forever.",
    )
    fast: bool = Field(
        default=False,
        description="Read a video file as fast as the pipeline takes its frames, instead of at its own rate.",
    )
    role: Literal["camera", "door"] = Field(
        default="camera",
        description="camera: its faces are matched and reported; door: besides, a person recognised by it is "
        "asked to turn their head and granted or denied access ([door]).",
    )

    @property
    def label(self) -> str:
        """The source's name in events, pages and logs: ``name``, else the URL without
        credentials, query or scheme noise (a file's stem for files)."""
        if self.name:
            return self.name
        parts = urlsplit(self.url)
        if parts.scheme in ("rtsp", "rtsps", "http", "https"):
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
            return f"{host}{port}{parts.path}".rstrip("/") or self.url
        if self.url.isdigit():
            return f"camera{self.url}"
        return Path(self.url).stem or self.url


class DoorConfig(Section):
    """[door]: access decisions at the sources whose role is door (streamrec/door/access.py). A person
    is challenged once several embeddings of their track agree, closer than [matcher] allows; they are
    granted when their head turns the asked way in time while their track and identity hold."""

    threshold: float = Field(
        default=0.85, gt=0, le=MAX_DISTANCE,
        description="An embedding counts towards a challenge when its nearest person is closer than this "
        "(at most [matcher] threshold: a door is stricter than a camera) ...",
    )
    votes: int = Field(
        default=2, ge=2, le=100,
        description="... and a challenge starts when this many of them, of one track, name one person ...",
    )
    window_s: float = Field(
        default=2.0, gt=0, le=60,
        description="... within this many seconds (of the frames' capture times).",
    )
    challenge: Literal["random", "left", "right"] = Field(
        default="random",
        description="Which way the person is asked to turn their head (their own left or right): random "
        "(each time, so that no recording of a turn can be prepared for it), or always left or right.",
    )
    turn_degrees: float = Field(
        default=15.0, ge=5, le=60,
        description="How far the head must turn the asked way from where it was when asked; as far the "
        "other way denies. The yaw estimate moves by up to 8 degrees between frames with nobody turning.",
    )
    turned_degrees: float = Field(
        default=5.0, ge=0, le=45,
        description="... and the face must end up turned at least this far to the asked side (tilting a photo "
        "of a turned face only brings its estimate towards 0, never past it).",
    )
    still_degrees: float = Field(
        default=5.0, ge=0, le=30,
        description="A challenge whose face never moved this far either way ends as no_movement (a photo, a "
        "screen); else, out of time, as timeout.",
    )
    challenge_s: float = Field(
        default=4.0, gt=0, le=60,
        description="Seconds (of the frames' capture times) the person has to turn.",
    )
    yaw_frames: int = Field(
        default=3, ge=1, le=30,
        description="The yaw read is the median of the face's last this many frames (landmark noise).",
    )
    stall_s: float = Field(
        default=2.0, gt=0, le=60,
        description="A challenge whose door sent no frame for this many seconds is denied (stalled).",
    )
    actions: list[Action] = Field(
        default=[], max_length=16,
        description="What each outcome does: [[door.actions]] tables, type = \"webhook\" (url, method, headers) "
        "or \"command\" (argv), each with timeout_s and the outcomes that run it; performed in order, off the "
        "decisions' thread, each result recorded as an access event (docs/door.md).",
    )


def _existing_file(path: str) -> str:
    """A file the stage reads when it starts: checked now, so a typo is one line at load time."""
    path = os.path.expanduser(path)
    if path and not os.path.isfile(path):
        raise ValueError("no such file")
    return path


#: A path of a file that must exist, or "" for none; a leading ~ is the home directory.
FilePath = Annotated[str, AfterValidator(_existing_file), Field(json_schema_extra={"allowed": 'a path of an existing file, or ""'})]
_TOPIC_LEVELS = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")


def _topic_prefix(value: str) -> str:
    if not _TOPIC_LEVELS.fullmatch(value):
        raise ValueError("must be topic levels of letters, digits, '_' and '-', separated by '/'")
    return value


TopicPrefix = Annotated[str, AfterValidator(_topic_prefix), Field(
    max_length=200, json_schema_extra={"allowed": "topic levels of letters, digits, '_' and '-', separated by '/'"},
)]


class MqttConfig(Section):
    """[mqtt]: every journaled event published to an MQTT broker (README.md, "MQTT"), for Home Assistant
    and the like. Beyond loopback the broker must be reached with a user name and TLS."""

    broker: BrokerAddress = Field(
        default="",
        description='The broker\'s HOST:PORT (1883 is MQTT, 8883 MQTT over TLS); "": no MQTT.',
    )
    prefix: TopicPrefix = Field(
        default="streamrec",
        description="Events go to PREFIX/CAMERA/TYPE, the latest decision of each camera to PREFIX/CAMERA/decision "
        "(retained), and online/offline to PREFIX/status.",
    )
    discovery: bool = Field(
        default=True,
        description="Announce a sensor per camera with Home Assistant's MQTT discovery (retained).",
    )
    discovery_prefix: TopicPrefix = Field(
        default="homeassistant",
        description="Where Home Assistant reads discovery messages (its own setting of that name).",
    )
    client_id: str = Field(
        default="streamrec", pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="The client id on the broker, distinct for each pipeline publishing there; also names the "
        "device in Home Assistant.",
        json_schema_extra={"allowed": "1 to 64 letters, digits, '_' and '-'"},
    )
    username: str = Field(
        default="", max_length=200,
        description='The user name to log in with; "": none (anonymous).',
    )
    password_file: FilePath = Field(
        default="",
        description='A file whose first line is the password of username (never the password itself in this file); '
        '"": none.',
    )
    tls: bool = Field(
        default=False,
        description="Connect with TLS, checking the broker's certificate (against tls_ca, else the system's "
        "certificate authorities).",
    )
    tls_ca: FilePath = Field(
        default="",
        description='PEM certificate(s) of the authority that signed the broker\'s certificate; "": the system\'s.',
    )
    tls_cert: FilePath = Field(
        default="",
        description='PEM client certificate, for brokers that ask for one; with tls_key. "": none.',
    )
    tls_key: FilePath = Field(
        default="",
        description='PEM private key of tls_cert (unencrypted). "": none.',
    )
    keepalive: int = Field(
        default=60, ge=5, le=3600,
        description="Seconds between the keep-alive messages that tell a lost broker (and the broker a lost "
        "pipeline, which then publishes its offline status).",
    )

    _tls_pair = _together("mqtt", "tls_cert", "tls_key")

    @_rules
    def _secure_beyond_loopback(self) -> Iterator[RuleError]:
        if (self.tls_ca or self.tls_cert) and not self.tls:
            key = "tls_ca" if self.tls_ca else "tls_cert"
            yield RuleError(("mqtt", key), getattr(self, key), "is used only with tls = true: set it, or remove this key",
                            reads=(("mqtt", "tls"),))
        if self.password_file and not self.username:
            yield RuleError(("mqtt", "password_file"), self.password_file, "a password needs a username: set username",
                            reads=(("mqtt", "username"),))
        if self.broker and binds_beyond_loopback(parse_broker_address(self.broker)) and not (self.username and self.tls):
            yield RuleError(("mqtt", "broker"), self.broker, "is beyond this machine: the events (with the names of the "
                            "people recognised) would cross the network to anyone; set username, password_file and "
                            "tls = true, or use a broker on 127.0.0.1", reads=(("mqtt", "username"), ("mqtt", "tls")))


class RunConfig(BaseModel):
    """A whole configuration file."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # frozen: one default instance per section is safe to share
    pipeline: PipelineConfig = PipelineConfig()
    triton: TritonConfig = TritonConfig()
    detector: DetectorConfig = DetectorConfig()
    batch: BatchConfig = BatchConfig()
    tracker: TrackerConfig = TrackerConfig()
    matcher: MatcherConfig = MatcherConfig()
    outputs: OutputsConfig = OutputsConfig()
    auth: AuthConfig = AuthConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    door: DoorConfig = DoorConfig()
    mqtt: MqttConfig = MqttConfig()
    links: LinksConfig = LinksConfig()
    sources: list[SourceConfig] = Field(
        default=[], max_length=MAX_SOURCES,
        json_schema_extra={"allowed": f"[[sources]] tables, one per source, at most {MAX_SOURCES}"},
    )

    def worker_links(self) -> list[tuple[str, str]]:
        """``(frames, status)`` of each inference worker, ``""`` for one in the run's private folder;
        none when one inference stage serves every camera."""
        if self.links.workers:
            return [(worker.frames, worker.status) for worker in self.links.workers]
        return [("", "")] * self.pipeline.workers if self.pipeline.workers > 1 else []

    @_rules
    def _across_sections(self) -> Iterator[RuleError]:
        seen: dict[str, int] = {}
        for index, source in enumerate(self.sources):
            first = seen.setdefault(source.label, index)
            if first != index:
                yield RuleError(("sources", index, "name"), source.label, f"sources[{first}] has the same name "
                                "(names derive from the URL where none is given): give each source its own name",
                                reads=(("sources",),))
        if not self.tracker.embed_every_frame:
            for key in ("votes", "unknown_after"):
                value = getattr(self.matcher, key)
                if value > self.tracker.max_embeddings:
                    yield RuleError(("matcher", key), value, f"must be at most [tracker] max_embeddings "
                                    f"({self.tracker.max_embeddings}): a track has no more embeddings",
                                    reads=(("tracker", "embed_every_frame"), ("tracker", "max_embeddings")))
        for key, address in self.links.set_links():
            for output in ("events", "frames"):
                taken = getattr(self.outputs, output)
                if clashes(parse_zmq_endpoint(address), parse_zmq_endpoint(taken)):
                    yield RuleError(link_location(key), address, f"binds the same address as outputs.{output} ({taken})",
                                    reads=(*_EVERY_LINK, ("outputs", output)))
        given = len(self.links.workers)
        if given and self.pipeline.workers not in (1, given):
            yield RuleError(("pipeline", "workers"), self.pipeline.workers, f"[[links.workers]] gives {given} worker(s): "
                            "set the same number, or leave it 1", reads=(("links", "workers"),))
        shared = next((key for key in ("frames", "status") if getattr(self.links, key)), None)
        if self.pipeline.workers > 1 and shared is not None:
            yield RuleError(("pipeline", "workers"), self.pipeline.workers, f"each worker binds its own {shared} link, "
                            f"and links.{shared} gives one address: leave it \"\", or give [[links.workers]]",
                            reads=(("links", "frames"), ("links", "status")))
        if self.door.threshold > self.matcher.threshold:
            yield RuleError(("door", "threshold"), self.door.threshold, f"must be at most [matcher] threshold "
                            f"({self.matcher.threshold:g}): a door names no one a camera would not",
                            reads=(("matcher", "threshold"),))
