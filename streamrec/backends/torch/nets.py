"""The four networks as PyTorch modules on one device: :class:`TorchNet`, the torch backend's
:class:`~streamrec.backends.base.Backend` (NumPy in, NumPy out, as every backend), whose
:meth:`TorchNet.forward` the cascade and the embedder call on tensors that never leave the device.

The modules are the project's own (:mod:`streamrec.detect.nets`, :mod:`streamrec.embed.nets`)
holding the published weights, loaded by the code the engine build exports them with
(:mod:`streamrec.engines.weights`). The engine file a :class:`TorchNet` is opened with names the
network (``pnet.onnx`` ... ``facenet.onnx``); its weights come from the published packages, not
from the ONNX file, so there is no second converter. A FaceNet trained by ``streamrec train``
(``facenet-NAME.onnx``) runs from the PyTorch weights saved beside it (``facenet-NAME.pt``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from streamrec.backends.base import Backend, BackendOptions, TensorSpec
from streamrec.backends.torch.device import exact_fp32, open_device, reduced_dtype, set_cpu_threads
from streamrec.engines import ENGINE_FILES, trained_weights
from streamrec.engines.sources import locate_sources

__all__ = ["TorchNet"]

_F32, _U8 = np.dtype(np.float32), np.dtype(np.uint8)


def _spec(name: str, shape: tuple[int | None, ...], dtype: np.dtype = _F32) -> TensorSpec:
    return TensorSpec(name, shape, dtype)


#: net name -> (input spec, output specs): the contract of the ONNX engines (engines/README.md).
_SPECS: dict[str, tuple[TensorSpec, list[TensorSpec]]] = {
    "pnet": (
        _spec("image", (None, None, None, 3)),
        [_spec("prob", (None, None, None)), _spec("reg", (None, None, None, 4))],
    ),
    "rnet": (_spec("image", (None, 24, 24, 3)), [_spec("prob", (None,)), _spec("reg", (None, 4))]),
    "onet": (
        _spec("image", (None, 48, 48, 3)),
        [_spec("prob", (None,)), _spec("reg", (None, 4)), _spec("landmarks", (None, 10))],
    ),
    "facenet": (_spec("image", (None, 160, 160, 3), _U8), [_spec("embedding", (None, 512))]),
}


def _network(model_path: Path) -> str:
    """The network an engine file holds, by its name; ``ValueError`` for any other file."""
    if trained_weights(model_path) is not None:
        return "facenet"
    for name in _SPECS:
        if model_path.name == ENGINE_FILES[name]:
            return name
    names = ", ".join(ENGINE_FILES[n] for n in _SPECS)
    raise ValueError(f"{model_path.name}: the torch backend runs the networks of {names} (or a trained FaceNet) only")


def _load(name: str, model_path: Path) -> nn.Module:
    """The weights of one network as a module in eval mode: a trained FaceNet's own, else the
    published ones (FaceNet: a few seconds, its 94 MB graph is parsed and checked)."""
    from streamrec.embed.nets import InceptionResnetV1
    from streamrec.engines.weights import load_facenet, load_mtcnn

    weights = trained_weights(model_path)
    if weights is not None:
        if not weights.is_file():
            raise ValueError(f"{weights.name} is missing beside {model_path.name}: the torch backend runs its weights")
        model = InceptionResnetV1()
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
        return model.eval()
    sources = locate_sources()
    return load_facenet(sources) if name == "facenet" else load_mtcnn(sources)[name]


class TorchNet(Backend):
    """One network on ``options.device`` (``cpu``, the default; ``cuda``, ``cuda:N``), computing in
    ``options.precision`` (``fp32``; ``fp16`` or ``bf16`` by autocast where the device has it).

    :meth:`forward` takes and returns device tensors, in chunks of ``options.max_batch`` so
    memory stays bounded; outputs are always float32.
    """

    kind = "torch"
    library = "torch"
    precisions = ("fp32", "bf16", "fp16")

    @classmethod
    def check_options(cls, options: BackendOptions) -> None:
        super().check_options(options)
        reduced_dtype(open_device(options.device or "cpu"), options.precision)

    def __init__(self, model_path: Path, options: BackendOptions) -> None:
        super().__init__(model_path, options)
        name = _network(self.model_path)
        self.device = open_device(options.device or "cpu")
        self.autocast = reduced_dtype(self.device, options.precision)
        if self.device.type == "cpu":
            set_cpu_threads(options.threads)
        else:
            exact_fp32()
        self.module = _load(name, self.model_path).to(self.device).eval()
        self.inputs = [_SPECS[name][0]]
        self.outputs = _SPECS[name][1]

    @contextlib.contextmanager
    def _arithmetic(self) -> Iterator[None]:
        with torch.inference_mode():
            if self.autocast is None:
                yield
            else:
                with torch.autocast(self.device.type, dtype=self.autocast):
                    yield

    def _call(self, batch: torch.Tensor) -> list[torch.Tensor]:
        out = self.module(batch)
        return [t.float() for t in (out if isinstance(out, tuple) else (out,))]

    def forward(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """The module's outputs for a device tensor batch of any size (first axis)."""
        step = self.options.max_batch
        with self._arithmetic():
            if len(batch) <= step:
                return self._call(batch)
            parts = [self._call(batch[i : i + step]) for i in range(0, len(batch), step)]
            return [torch.cat(chunks) for chunks in zip(*parts)]

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        return [t.cpu().numpy() for t in self.forward(torch.from_numpy(batch).to(self.device))]

    def close(self) -> None:
        del self.module
