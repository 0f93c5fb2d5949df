"""``[links]``: the addresses of the links between stages (their refusals: tests/config/test_config.py)."""

from __future__ import annotations

from streamrec.bus.sockets import Endpoints
from streamrec.config import parse_config
from tests.config.test_config import CURVE


def test_a_frames_link_beyond_this_machine_with_the_pixels_inline_is_accepted():
    config = parse_config({"links": {"frames": "tcp://10.0.0.2:5600", "frame_pixels": "jpeg", **CURVE}})
    assert dict(config.links.set_links()) == {"frames": "tcp://10.0.0.2:5600"}


def test_links_left_empty_stay_in_the_private_folder_and_set_ones_replace_them(tmp_path):
    config = parse_config({"links": {"frames": "tcp://127.0.0.1:5600", "jpeg_feed": "ipc:///tmp/feed"}})
    endpoints = Endpoints.for_run(tmp_path, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", dict(config.links.set_links()))
    assert endpoints.frames == "tcp://127.0.0.1:5600" and endpoints.jpeg_feed == "ipc:///tmp/feed"
    assert endpoints.status == f"ipc://{tmp_path / 'status'}" and endpoints.events_in == f"ipc://{tmp_path / 'events'}"
    assert Endpoints.for_run(tmp_path, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2") == Endpoints.for_run(
        tmp_path, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", dict(parse_config({}).links.set_links()))
