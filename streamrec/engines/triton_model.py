"""A Triton Python-backend model that runs one ONNX file with ONNX Runtime.

``streamrec engines export --triton DIR --platform python`` copies this file to
``DIR/<net>/1/model.py`` beside ``model.onnx``: for Triton builds that lack the ONNX Runtime
backend (the one nvidia-pytriton bundles has only the Python backend). It runs inside the
server's own Python, which has ONNX Runtime and NumPy but not streamrec, so it imports nothing of
streamrec. Requests that arrive together (dynamic batching) and share a shape run as one batch.
The config parameter ``threads`` sets ONNX Runtime's intra-op threads (0: its default); spinning
is off, as in streamrec's own onnxruntime backend, so idle instances leave the cores alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]


class TritonPythonModel:
    """Triton's entry point: ``initialize`` once per instance, ``execute`` per batch of requests."""

    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        threads = int(config.get("parameters", {}).get("threads", {}).get("string_value", "0"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        model = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.outputs = [output.name for output in self.session.get_outputs()]

    def execute(self, requests: list[Any]) -> list[Any]:
        arrays = [pb_utils.get_input_tensor_by_name(request, self.input).as_numpy() for request in requests]
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, array in enumerate(arrays):
            groups.setdefault(array.shape[1:], []).append(index)
        responses: list[Any] = [None] * len(requests)
        for members in groups.values():
            results = self.session.run(None, {self.input: np.concatenate([arrays[i] for i in members])})
            start = 0
            for index in members:
                stop = start + len(arrays[index])
                tensors = [pb_utils.Tensor(name, result[start:stop]) for name, result in zip(self.outputs, results)]
                responses[index] = pb_utils.InferenceResponse(output_tensors=tensors)
                start = stop
        return responses
