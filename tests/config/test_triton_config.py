"""The [triton] section: what the triton backend is given, and bad values named by their key."""

from __future__ import annotations

import pytest

from streamrec.backends import TritonOptions
from streamrec.config import ConfigError, parse_config


def test_the_section_becomes_the_backends_options():
    config = parse_config({"pipeline": {"backend": "triton"}, "triton": {
        "url": "gpu-box:9001", "timeout_s": 2.5, "tls": True, "root_cert": "/etc/ca.pem", "model_prefix": "door-"}})
    assert config.triton.options() == TritonOptions(url="gpu-box:9001", timeout_s=2.5, tls=True,
                                                    root_cert="/etc/ca.pem", model_prefix="door-")
    assert parse_config({}).triton.options() == TritonOptions()


@pytest.mark.parametrize(("section", "message"), [
    ({"url": "gpu-box"}, "triton.url: must be host:port"),
    ({"url": "gpu-box:0"}, "triton.url: must be host:port"),
    ({"timeout_s": 0}, "triton.timeout_s: must be a finite number > 0"),
    ({"client_cert": "/etc/me.pem"}, "triton.client_key: client_cert and client_key go together"),
    ({"port": 8001}, "triton.port"),
])
def test_bad_values_are_named_by_their_key(section: dict, message: str):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config({"triton": section})
