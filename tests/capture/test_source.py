"""Source strings: what people type becomes a typed spec, or one clear line saying why not."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.capture import SourceError, SourceKind, parse_source


def test_webcam_indices() -> None:
    spec = parse_source(" 1 ")
    assert (spec.kind, spec.target, spec.label, spec.live) == (SourceKind.WEBCAM, 1, "webcam:1", True)
    assert parse_source(0).target == 0


def test_file_path_and_file_url(hamilton_clip: Path) -> None:
    spec = parse_source(str(hamilton_clip))
    assert (spec.kind, spec.target, spec.live) == (SourceKind.FILE, str(hamilton_clip), False)
    assert parse_source(hamilton_clip) == spec
    assert parse_source(f"file://{hamilton_clip}") == spec


def test_rtsp_defaults_to_tcp_and_hides_credentials() -> None:
    spec = parse_source("rtsp://admin:s3cret@10.0.0.7:8554/live/main?channel=2")
    assert spec.kind is SourceKind.RTSP
    assert spec.transport == "tcp"
    assert spec.label == "rtsp://10.0.0.7:8554/live/main"
    assert spec.target == "rtsp://admin:s3cret@10.0.0.7:8554/live/main?channel=2"
    assert "s3cret" not in repr(spec)


def test_rtsp_transport_from_url_or_option() -> None:
    from_url = parse_source("rtsps://cam.local/stream?transport=UDP&profile=1")
    assert from_url.transport == "udp"
    assert from_url.target == "rtsps://cam.local/stream?profile=1"  # the option is ours, not the server's
    assert parse_source("rtsp://cam.local/s", transport="udp").transport == "udp"
    assert parse_source("rtsp://cam.local/s?transport=tcp", transport="udp").transport == "tcp"


def test_http_mjpeg_url() -> None:
    spec = parse_source("http://user:pw@[::1]:8080/video.mjpg?token=abc")
    assert (spec.kind, spec.label) == (SourceKind.HTTP, "http://[::1]:8080/video.mjpg")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "empty video source"),
        ("   ", "empty video source"),
        ("-1", "negative"),
        ("no/such/clip.mp4", "no/such/clip.mp4: no such file"),
        ("ftp://user:pw@host/clip.mp4", "unsupported scheme ftp://"),
        ("rtsp:///stream", "no host"),
        ("rtsp://cam:99999/s", "invalid port"),
        ("rtsp://cam/s?transport=quic", "unknown RTSP transport 'quic'"),
    ],
)
def test_unusable_sources_say_why(source: str, message: str) -> None:
    with pytest.raises(SourceError, match=message) as caught:
        parse_source(source)
    text = str(caught.value)
    assert "\n" not in text and "pw@" not in text


def test_directory_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a directory"):
        parse_source(tmp_path)
