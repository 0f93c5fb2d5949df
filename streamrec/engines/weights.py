"""The published weights as PyTorch modules, loaded by one piece of code for both users: the
engine build (which exports them to ONNX) and the torch backend (which runs them as they are).

Needs ``torch``; the sources are found and verified by :func:`streamrec.engines.sources.locate_sources`.
"""

from __future__ import annotations

import torch

from streamrec.detect.nets import ONet, PNet, RNet
from streamrec.embed.nets import InceptionResnetV1
from streamrec.engines.facenet import facenet_from_graph
from streamrec.engines.sources import SourceFile
from streamrec.engines.tfgraph import read_graph

__all__ = ["load_facenet", "load_mtcnn"]


def load_mtcnn(sources: dict[str, SourceFile]) -> dict[str, PNet | RNet | ONet]:
    """P-Net, R-Net and O-Net (keys ``pnet``, ``rnet``, ``onet``) in eval mode, from the state
    dicts of facenet-pytorch, loaded strictly."""
    nets: dict[str, PNet | RNet | ONet] = {"pnet": PNet(), "rnet": RNet(), "onet": ONet()}
    for name, net in nets.items():
        state = torch.load(sources[name].path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
        net.eval()
    return nets


def load_facenet(sources: dict[str, SourceFile]) -> InceptionResnetV1:
    """FaceNet 20180408-102900 in eval mode, converted from Sandberg's frozen graph (a few
    seconds: the 94 MB graph is parsed and every tensor checked)."""
    return facenet_from_graph(read_graph(sources["facenet"].path))
