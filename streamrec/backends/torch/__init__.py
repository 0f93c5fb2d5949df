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
* :mod:`.nets`: :class:`TorchNet`, the backend (one network, loaded from the published weights
  by the engine build's code), registered as ``torch`` in :data:`streamrec.backends.REGISTRY`;
* :mod:`.device`: which devices and precisions are usable here, each refusal one line.

:class:`TorchMTCNN` and :class:`TorchFaceEmbedder` subclass the host classes and keep their
interfaces and constructors (``TorchMTCNN(pnet, rnet, onet, config)`` as ``MTCNN``'s), so
:class:`~streamrec.faces.FaceModels` opens them around the backend's nets
(:func:`streamrec.faces.face_engine`), and anything written against
:class:`~streamrec.detect.mtcnn.MTCNN` or :class:`~streamrec.embed.facenet.FaceEmbedder` takes
them unchanged. Results equal the host path's up to the networks' own rounding (PyTorch's
kernels against ONNX Runtime's, about 1e-6).

Precision: FaceNet runs in fp32, fp16 (CUDA) or bf16 (CUDA, or a CPU with AVX-512 BF16 or AMX);
the detector always runs in fp32 (:class:`~streamrec.faces.FaceModels` opens its nets so),
because its nets are a small part of the work and reduced precision moves face probabilities
across the stage thresholds.

Threads: PyTorch's CPU kernels run on an OpenMP pool whose idle threads spin at every barrier
by default. On a machine whose cores are shared (other processes of the pipeline, other users)
a spinning thread that loses its core stalls the whole pool; measured on 2 busy cores, FaceNet
took 300 ms per face instead of 100 and MTCNN 166 ms per frame instead of 37. So this package
asks for passive waiting (``OMP_WAIT_POLICY=PASSIVE``, the counterpart of the ONNX Runtime
backend's spinning switched off) unless the environment already says otherwise. OpenMP reads
it once, when PyTorch loads: a process that imported ``torch`` earlier keeps its policy.

Importing this package needs ``torch`` and ``torchvision`` (``pip install 'streamrec[torch]'``);
the weights come from the packages the engine build reads (engines/README.md).
"""

from __future__ import annotations

import os

# Before torch loads OpenMP (see above): every import below may load torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import torch  # noqa: F401
    import torchvision  # type: ignore[import-untyped]  # noqa: F401
except ImportError as exc:
    raise ImportError(f"it needs PyTorch and torchvision ({exc}): pip install 'streamrec[torch]'") from None

from streamrec.backends.torch.facenet import TorchFaceEmbedder
from streamrec.backends.torch.mtcnn import TorchMTCNN
from streamrec.backends.torch.nets import TorchNet

__all__ = ["TorchFaceEmbedder", "TorchMTCNN", "TorchNet"]
