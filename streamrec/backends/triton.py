"""Triton Inference Server over gRPC: the engines run on a server, this process only sends batches.

Install: ``pip install 'streamrec[triton]'`` (``tritonclient[grpc]``); serve the engines with
``streamrec engines export --triton DIR`` and ``tritonserver --model-repository DIR``
(docs/triton.md). Where the server is and how to reach it is :class:`TritonOptions`
(``[triton]`` in the configuration, ``--triton-url`` on the command line).

Models. The server's model name is the engine file's stem (``pnet``, ``rnet``, ``onet``,
``facenet``, ``facenet_int8``, ``facenet-NAME``) after ``model_prefix``. Its inputs and outputs
(names, dtypes, dims) are read from the server's model metadata, and compared with the ONNX file's
when that file is here, so a repository exported from other engines is refused at once rather
than answering with other numbers. An output the config reshapes (one value per item, declared
``[1]``) comes back in the engine's own shape.

Faults. Every call has ``timeout_s``. When the server is down at start, or the model is missing
or not ready, opening fails in one line (``triton at HOST:PORT has no ready model 'pnet'``). A
call that fails later raises :class:`~streamrec.backends.base.BackendUnavailable` and closes the
connection; the next calls fail at once until a back-off (0.25 s, doubling up to 8 s) has passed,
then one tries a fresh connection, and the first that succeeds resets the back-off. So a server
restart costs the frames in between and a few seconds, never the process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

try:
    import tritonclient.grpc as grpcclient  # type: ignore[import-untyped]
    from tritonclient.utils import InferenceServerException  # type: ignore[import-untyped]
except ImportError:
    raise ImportError("tritonclient is not installed: pip install 'streamrec[triton]'") from None

from streamrec.backends.base import Backend, BackendOptions, BackendUnavailable, TensorSpec, TritonOptions

__all__ = ["BACKOFF_MAX_S", "BACKOFF_MIN_S", "HEALTH_TIMEOUT_S", "Connection", "TritonBackend", "TritonHealth", "check_server"]

#: the first wait after a failed call, doubled after each further failure up to the last
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.25, 8.0
#: the longest a health check waits for the server
HEALTH_TIMEOUT_S = 1.0
_DTYPES: dict[str, np.dtype] = {"FP32": np.dtype(np.float32), "FP16": np.dtype(np.float16), "UINT8": np.dtype(np.uint8)}
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}


def _reason(exc: Exception) -> str:
    """One line out of a gRPC failure."""
    text = exc.message() if isinstance(exc, InferenceServerException) else str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


class Connection:
    """A gRPC client to the server, dropped after a failure and made again after the back-off."""

    def __init__(self, options: TritonOptions) -> None:
        self.options = options
        self._client: Any = None
        self._backoff = 0.0
        self._retry_at = 0.0

    def client(self) -> Any:
        """The client; :class:`BackendUnavailable` while the back-off after a failure lasts."""
        if self._client is None:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise BackendUnavailable(f"triton at {self.options.url} is unreachable; trying again in {wait:.1f} s")
            self._client = grpcclient.InferenceServerClient(
                self.options.url, ssl=self.options.tls, root_certificates=self.options.root_cert or None,
                private_key=self.options.client_key or None, certificate_chain=self.options.client_cert or None,
            )
        return self._client

    def call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``client.method(*args, **kwargs)`` with the timeout; a failure closes the connection,
        starts (or lengthens) the back-off and raises :class:`BackendUnavailable` saying ``what`` failed."""
        client = self.client()
        try:
            result = getattr(client, method)(*args, client_timeout=self.options.timeout_s, **kwargs)
        except InferenceServerException as exc:
            self.failed()
            raise BackendUnavailable(f"triton at {self.options.url}: {what} failed: {_reason(exc)}") from None
        self._backoff = 0.0
        return result

    def failed(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._backoff = min(max(self._backoff * 2, BACKOFF_MIN_S), BACKOFF_MAX_S)
        self._retry_at = time.monotonic() + self._backoff

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


@dataclass(frozen=True)
class _Output:
    spec: TensorSpec
    reshape: tuple[int, ...] | None  #: the engine's own dims after the batch, where the config reshapes


def _spec(tensor: Any) -> TensorSpec:
    shape = tuple(None if d < 0 else int(d) for d in tensor.shape)
    if tensor.datatype not in _DTYPES:
        raise ValueError(f"tensor {tensor.name!r} has type {tensor.datatype}, which streamrec does not send")
    return TensorSpec(tensor.name, shape, _DTYPES[tensor.datatype])


def _compatible(ours: TensorSpec, theirs: TensorSpec) -> bool:
    return ours.name == theirs.name and ours.dtype == theirs.dtype and len(ours.shape) == len(theirs.shape) and all(
        a is None or b is None or a == b for a, b in zip(ours.shape, theirs.shape)
    )


class TritonBackend(Backend):
    """Runs one engine on a Triton Inference Server (``options.triton``)."""

    kind = "triton"
    library = "tritonclient"
    #: what the server computes in is its model's business; int8 asks for the quantized model
    precisions = ("fp32", "int8")

    @classmethod
    def check_options(cls, options: BackendOptions) -> None:
        super().check_options(options)
        if options.device not in (None, "", "cpu"):
            raise ValueError(
                f"the triton backend runs where its server puts the model (got device {options.device!r}); "
                "choose the server's device when exporting: streamrec engines export --triton DIR --gpu"
            )

    def __init__(self, model_path: Path, options: BackendOptions) -> None:
        super().__init__(model_path, options)
        self.server = options.triton
        self.model = self.server.model_prefix + self.model_path.stem
        self.connection = Connection(self.server)
        _check_ready(self.connection, [self.model])
        try:
            metadata = self.connection.call("reading the model", "get_model_metadata", self.model)
            config = self.connection.call("reading the model", "get_model_config", self.model).config
        except BackendUnavailable as exc:
            raise ValueError(f"{exc} (is tritonserver running there?)") from None
        self.inputs = [_spec(tensor) for tensor in metadata.inputs]
        reshapes = {
            output.name: tuple(output.reshape.shape) if output.HasField("reshape") else None for output in config.output
        }
        self._outputs = [_Output(_spec(tensor), reshapes.get(tensor.name)) for tensor in metadata.outputs]
        self.outputs = [
            TensorSpec(o.spec.name, (o.spec.shape[0], *o.reshape), o.spec.dtype) if o.reshape is not None else o.spec
            for o in self._outputs
        ]
        if len(self.inputs) != 1:
            raise ValueError(f"triton model {self.model!r} has {len(self.inputs)} inputs; an engine has one")
        if self.model_path.is_file():
            self._check_against(self.model_path)

    def _check_against(self, onnx_path: Path) -> None:
        """Refuse a server model whose inputs or outputs differ from the local engine's."""
        from streamrec.backends.onnxruntime import OnnxRuntimeBackend

        local = OnnxRuntimeBackend(onnx_path, BackendOptions(threads=1))
        try:
            for what, ours, theirs in (("inputs", local.inputs, self.inputs), ("outputs", local.outputs, self.outputs)):
                if len(ours) != len(theirs) or not all(map(_compatible, ours, theirs)):
                    raise ValueError(
                        f"triton at {self.server.url}: model {self.model!r} has {what} "
                        f"{[(s.name, s.shape, s.dtype.name) for s in theirs]}, {onnx_path.name} has "
                        f"{[(s.name, s.shape, s.dtype.name) for s in ours]}: export the repository from these engines"
                    )
        finally:
            local.close()

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        request = grpcclient.InferInput(self.inputs[0].name, list(batch.shape), _NAMES[batch.dtype])
        request.set_data_from_numpy(batch)
        wanted = [grpcclient.InferRequestedOutput(o.spec.name) for o in self._outputs]
        result = self.connection.call(f"running {self.model!r}", "infer", self.model, [request], outputs=wanted)
        arrays = [result.as_numpy(o.spec.name) for o in self._outputs]
        return [a if o.reshape is None else a.reshape(len(batch), *o.reshape) for a, o in zip(arrays, self._outputs)]

    def close(self) -> None:
        self.connection.close()


def _check_ready(connection: Connection, models: list[str]) -> None:
    """``ValueError`` (one line) unless the server answers and has every one of ``models`` ready."""
    url = connection.options.url
    try:
        connection.call("the health check", "is_server_live")
        for model in models:
            if not connection.call("the model check", "is_model_ready", model):
                raise ValueError(f"triton at {url} has no ready model {model!r}")
    except BackendUnavailable as exc:
        raise ValueError(f"{exc} (is tritonserver running there?)") from None


def check_server(options: TritonOptions, engines: list[str]) -> None:
    """``ValueError`` (one line) unless the server at ``options.url`` answers and serves every one
    of ``engines`` (engine file stems: ``pnet``...), ready: what a pipeline checks before it starts."""
    connection = Connection(options)
    try:
        _check_ready(connection, [options.model_prefix + name for name in engines])
    finally:
        connection.close()


class TritonHealth:
    """The server's health as gauges: ``triton_live`` and ``triton_ready`` (1 or 0), and
    ``triton_model_ready_<model>`` for each model in use; all 0 while the server is unreachable.
    Its calls wait at most :data:`HEALTH_TIMEOUT_S`: the stage that reads them waits meanwhile."""

    def __init__(self, options: TritonOptions, models: list[str]) -> None:
        self.models = models
        self.connection = Connection(replace(options, timeout_s=min(options.timeout_s, HEALTH_TIMEOUT_S)))

    def gauges(self) -> dict[str, float]:
        figures = {"triton_live": 0.0, "triton_ready": 0.0, **{f"triton_model_ready_{m}": 0.0 for m in self.models}}
        try:
            figures["triton_live"] = float(self.connection.call("the health check", "is_server_live"))
            figures["triton_ready"] = float(self.connection.call("the health check", "is_server_ready"))
            for model in self.models:
                figures[f"triton_model_ready_{model}"] = float(
                    self.connection.call("the model check", "is_model_ready", model)
                )
        except BackendUnavailable:
            pass
        return figures

    def close(self) -> None:
        self.connection.close()
