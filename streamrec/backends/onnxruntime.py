"""ONNX Runtime on the CPU: the default backend, and the one CI runs.

Sessions use ``threads`` intra-op threads and one inter-op thread, with spinning switched off:
ORT's spinning worker threads otherwise keep every core busy between calls and starve the NumPy
stages of the MTCNN cascade that run in between (measured on 2 cores: 75 ms instead of 21 ms for
one frame).

Layout. At its highest optimisation level ONNX Runtime runs convolutions in a blocked channel
layout (NCHWc: channels in blocks of 8 on AVX2, 16 on AVX-512), padding a layer's channels up to
a whole block. R-Net, O-Net and FaceNet run 1.3-1.6x faster in it; P-Net, whose first layers
have 10 channels padded to 16, runs 10-20% slower on pyramid levels from 193x145 up (measured
on the AVX2-only EPYC, docs/speed.md), so P-Net's session leaves that one transformation out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from streamrec.backends.base import Backend, BackendOptions, TensorSpec, default_threads
from streamrec.engines import ENGINE_FILES

__all__ = ["OnnxRuntimeBackend"]

_ORT_TYPES: dict[str, np.dtype] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(float16)": np.dtype(np.float16),
}


#: engine files whose sessions run without the NCHWc layout (see the module's docstring)
_WITHOUT_NCHWC = frozenset({ENGINE_FILES["pnet"]})


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    return TensorSpec(arg.name, shape, _ORT_TYPES[arg.type])


class OnnxRuntimeBackend(Backend):
    """Runs an ONNX file with ONNX Runtime's CPU execution provider."""

    kind = "onnxruntime"
    library = "onnxruntime"
    #: an int8 model file runs as it was quantized (QDQ); there is no bf16 arithmetic here.
    precisions = ("fp32", "int8")

    @classmethod
    def check_options(cls, options: BackendOptions) -> None:
        super().check_options(options)
        if (options.device or "cpu").lower() != "cpu":
            raise ValueError(f"the onnxruntime backend runs on the CPU only (got device {options.device!r})")

    def __init__(self, model_path: Path, options: BackendOptions) -> None:
        super().__init__(model_path, options)
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.threads or default_threads()
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        so.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(self.model_path), so, providers=["CPUExecutionProvider"],
            disabled_optimizers=["NchwcTransformer"] if self.model_path.name in _WITHOUT_NCHWC else None,
        )
        self.inputs = [_spec(a) for a in self.session.get_inputs()]
        self.outputs = [_spec(a) for a in self.session.get_outputs()]
        self._input_name = self.inputs[0].name

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self._input_name: batch})

    def close(self) -> None:
        del self.session
