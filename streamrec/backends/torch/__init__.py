"""The PyTorch backend: the whole face engine on one ``torch.device`` (the CPU, or CUDA).

The ONNX Runtime backend runs the four networks and leaves everything around them to NumPy on
the host: the MTCNN pyramid, candidate boxes, suppression, regression, the 24 and 48 px crops,
and FaceNet's 160 px crops. On a 640x480 frame that host work is most of MTCNN's time, and on
a GPU every step would also mean a copy each way. This backend keeps it all on the device:

* :mod:`.resample`: integral images and exact area resampling (the pyramid, the R-Net and O-Net
  crops), bit-equal to :mod:`streamrec.detect.resample`;
* :mod:`.nms`: suppression per frame, making the host's choices (IoU, and the final
  intersection over the smaller box);
* :mod:`.mtcnn`: :class:`TorchMTCNN`, the cascade over a batch of frames;
* :mod:`.crops`: FaceNet crops by box and margin or by landmark warp, equal to OpenCV's;
* :mod:`.facenet`: :class:`TorchFaceEmbedder`, embeddings from frames and their detections;
* :mod:`.nets`: the networks, loaded from the published weights by the engine build's code;
* :mod:`.device`: which devices and precisions are usable here, each refusal one line.

:class:`TorchMTCNN` and :class:`TorchFaceEmbedder` subclass the host classes and keep their
interfaces, so :class:`~streamrec.faces.FaceModels` and anything written against
:class:`~streamrec.detect.mtcnn.MTCNN` or :class:`~streamrec.embed.facenet.FaceEmbedder` takes
them unchanged. Results equal the host path's up to the networks' own rounding (PyTorch's
kernels against ONNX Runtime's, about 1e-6).

Precision: FaceNet runs in fp32, fp16 (CUDA) or bf16 (CUDA, or a CPU with AVX-512 BF16 or AMX);
the detector always runs in fp32, because its nets are a small part of the work and reduced
precision moves face probabilities across the stage thresholds.

Threads: PyTorch's CPU kernels run on an OpenMP pool whose idle threads spin at every barrier
by default. On a machine whose cores are shared (other processes of the pipeline, other users)
a spinning thread that loses its core stalls the whole pool; measured on 2 busy cores, FaceNet
took 300 ms per face instead of 100 and MTCNN 166 ms per frame instead of 37. So this package
asks for passive waiting (``OMP_WAIT_POLICY=PASSIVE``, the counterpart of the ONNX Runtime
backend's spinning switched off) unless the environment already says otherwise. OpenMP reads
it once, when PyTorch loads: a process that imported ``torch`` earlier keeps its policy.

Importing this package needs ``torch`` and ``torchvision`` (``pip install 'streamrec[torch]'``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import cast

# Before torch loads OpenMP (see above): every import below may load torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from torch import nn

from streamrec.backends.base import BackendOptions
from streamrec.backends.torch.device import open_device
from streamrec.backends.torch.facenet import TorchFaceEmbedder
from streamrec.backends.torch.mtcnn import TorchMTCNN
from streamrec.backends.torch.nets import TorchNet, TorchNets, load_nets
from streamrec.detect.mtcnn import MTCNNConfig
from streamrec.embed.facenet import EmbedConfig

__all__ = ["TorchFaceEmbedder", "TorchMTCNN", "TorchNet", "TorchNets", "TorchSettings", "load_nets", "open_face_engine"]


@dataclass(frozen=True)
class TorchSettings:
    """Where and how the torch backend runs.

    ``device``: ``cpu``, ``cuda`` or ``cuda:N``. ``precision``: FaceNet's arithmetic (``fp32``,
    ``fp16``, ``bf16``). ``compile``: run FaceNet through ``torch.compile`` (measured on a
    2-core CPU: about 13% faster per face once compiled, but each new batch size costs minutes of
    compiling, so it is off unless a long-running process asks for it).
    """

    device: str = "cpu"
    precision: str = "fp32"
    compile: bool = False


def open_face_engine(
    settings: TorchSettings,
    options: BackendOptions | None = None,
    detector: MTCNNConfig | None = None,
    embed: EmbedConfig | None = None,
) -> tuple[TorchMTCNN, TorchFaceEmbedder]:
    """The detector and the embedder on ``settings.device``, from the published weights.

    Raises ``ValueError`` (device or precision not usable here) or
    :class:`~streamrec.engines.sources.SourceError` (weights packages missing), with one line.
    """
    nets = load_nets(open_device(settings.device), settings.precision, options)
    if settings.compile:
        nets.facenet.module = cast(nn.Module, torch.compile(nets.facenet.module))
    return TorchMTCNN(nets.pnet, nets.rnet, nets.onet, detector), TorchFaceEmbedder(nets.facenet, embed)
