"""The backend names: one list, each with its implementation."""

from __future__ import annotations

import importlib

from streamrec.backends import BACKENDS, REGISTRY, Backend


def test_every_backend_name_has_an_implementation_and_every_implementation_a_name():
    assert set(BACKENDS) == set(REGISTRY)
    for name, target in REGISTRY.items():
        module, cls = target.split(":")
        implementation = getattr(importlib.import_module(module), cls)
        assert issubclass(implementation, Backend) and implementation.kind == name
