"""The four networks as PyTorch modules on one device, each usable as a plain
:class:`~streamrec.backends.base.Backend` (NumPy in, NumPy out) and, by the cascade and the
embedder, on tensors that never leave the device.

The modules are the project's own (:mod:`streamrec.detect.nets`, :mod:`streamrec.embed.nets`)
holding the published weights, loaded by the code the engine build uses
(:mod:`streamrec.engines.weights`): no second converter, and nothing from the ONNX files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from streamrec.backends.base import Backend, BackendOptions, TensorSpec
from streamrec.backends.torch.device import reduced_dtype, set_cpu_threads
from streamrec.engines.sources import locate_sources

__all__ = ["TorchNet", "TorchNets", "load_nets"]

_F32, _U8 = np.dtype(np.float32), np.dtype(np.uint8)


class TorchNet(Backend):
    """One module on ``device``; ``autocast`` (fp16/bf16) or ``None`` for fp32.

    :meth:`forward` takes and returns device tensors, in chunks of ``options.max_batch`` so
    memory stays bounded; outputs are always float32.
    """

    kind = "torch"

    def __init__(
        self,
        module: nn.Module,
        source: Path,
        specs: tuple[TensorSpec, list[TensorSpec]],
        device: torch.device,
        options: BackendOptions,
        autocast: torch.dtype | None = None,
    ) -> None:
        super().__init__(source, options)
        self.module = module.to(device).eval()
        self.device = device
        self.autocast = autocast
        self.inputs = [specs[0]]
        self.outputs = specs[1]

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


@dataclass(frozen=True)
class TorchNets:
    """The three MTCNN nets (always fp32) and FaceNet (in the chosen precision), on one device."""

    pnet: TorchNet
    rnet: TorchNet
    onet: TorchNet
    facenet: TorchNet


def load_nets(device: torch.device, precision: str = "fp32", options: BackendOptions | None = None) -> TorchNets:
    """Load the published weights onto ``device``.

    Raises ``ValueError`` when ``device`` cannot compute in ``precision``, and
    :class:`~streamrec.engines.sources.SourceError` when the weights packages are missing.
    """
    from streamrec.engines.weights import load_facenet, load_mtcnn

    options = options or BackendOptions()
    autocast = reduced_dtype(device, precision)
    if device.type == "cpu":
        set_cpu_threads(options.threads)
    sources = locate_sources()
    mtcnn = load_mtcnn(sources)
    nets = {
        name: TorchNet(mtcnn[name], sources[name].path, _SPECS[name], device, options) for name in ("pnet", "rnet", "onet")
    }
    facenet = TorchNet(load_facenet(sources), sources["facenet"].path, _SPECS["facenet"], device, options, autocast)
    return TorchNets(nets["pnet"], nets["rnet"], nets["onet"], facenet)
