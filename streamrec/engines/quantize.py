"""FaceNet at int8: ONNX Runtime static quantization, calibrated on real face crops.

fp32 FaceNet costs 2.84 GFLOP per face, so on a CPU its speed is bounded by the matrix
throughput (about 200 GFLOP/s on two AVX-512 cores here: ~14 ms per face). With weights
quantized per channel to int8 and activations to uint8 (QDQ format, min/max calibration),
ONNX Runtime uses the CPU's integer dot-product instructions and embeds a face about 3.4x
faster. Weights use 7 of their 8 bits (``reduce_range``): on CPUs without VNNI, ONNX Runtime
multiplies uint8 by int8 with AVX2's ``vpmaddubsw``, whose 16-bit sums saturate at full range
(measured on a 2-core AVX2-only AMD EPYC: min cosine to fp32 0.54 at full range, 0.997 with 7-bit
weights, 1.9x faster than fp32); the engine file is then right on every x86 CPU, with or without VNNI. The int8 engine is an option (``--precision int8``); its agreement with fp32 is checked
during the build and its LFW accuracy is recorded in docs/accuracy.md.

The L2 normalisation at the end stays in fp32: quantizing it (ONNX Runtime's default quantizes
the bottleneck's output and the element-wise square of the norm) left embeddings up to 0.3% off
unit length, which every distance and the match threshold then carried, and cost LFW View 1
accuracy (measured on the AVX2 EPYC: 0.982 with the tail quantized, 0.985 without, fp32 0.986;
the time per face is the same).

OpenVINO runs a FaceNet of its own at int8, quantized by its own tool, NNCF: 8-bit weights (7-bit
in the first convolution only, NNCF's guard against the same saturation) with its bias
correction, on the same crops, the normalisation again in fp32. OpenVINO's kernels take 8-bit
weights on every x86 CPU, and the full range keeps the embeddings closer to fp32 than the 7-bit
QDQ file does when OpenVINO runs that (on the build's crops, AVX2 EPYC: min cosine 0.9984
against 0.9971, mean 0.99942 against 0.99886; LFW View 1 in docs/speed.md).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

__all__ = ["quantize_facenet", "quantize_facenet_openvino"]


def quantize_facenet(fp32_path: Path, out_path: Path, calibration: np.ndarray, batch: int = 8) -> None:
    """Write an int8 copy of the FaceNet engine at ``fp32_path`` to ``out_path``.

    ``calibration``: ``(k, 160, 160, 3)`` uint8 face crops whose activation ranges set the
    quantization scales.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Crops(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([calibration[i : i + batch] for i in range(0, len(calibration), batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._batches, None)
            return None if item is None else {"image": item}

    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        quantize_static(
            str(prepared),
            str(out_path),
            _Crops(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            reduce_range=True,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=_normalisation(prepared),
            # the bottleneck's output is the embedding before normalisation: keep it in fp32
            extra_options={"OpTypesToExcludeOutputQuantization": ["Gemm", "MatMul"]},
        )


def quantize_facenet_openvino(fp32_path: Path, out_path: Path, calibration: np.ndarray, batch: int = 8) -> None:
    """Write OpenVINO's int8 copy of the FaceNet engine at ``fp32_path`` to ``out_path`` (an IR:
    the ``.xml`` named, its weights in the ``.bin`` beside it), quantized by NNCF and calibrated
    on ``calibration``, ``(k, 160, 160, 3)`` uint8 face crops.

    It runs in a fresh process of its own: OpenVINO names the operations the ONNX file leaves
    unnamed from a counter of the process, and the IR records those names, so only a fresh
    process writes the same bytes for the same input every time (the build is deterministic).
    """
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(_quantize_openvino, fp32_path, out_path, calibration, batch).result()


def _quantize_openvino(fp32_path: Path, out_path: Path, calibration: np.ndarray, batch: int) -> None:
    import logging

    import nncf  # type: ignore[import-untyped]
    import openvino as ov  # type: ignore[import-untyped]

    nncf.set_log_level(logging.ERROR)  # it logs every layer it leaves alone; the build reports its own steps
    model = ov.Core().read_model(fp32_path)
    ops = model.get_ordered_ops()
    start = _after_bottleneck([op.get_type_name() for op in ops])
    tail = [op.get_friendly_name() for op in ops[start:] if op.get_type_name() not in ("Constant", "Result")]
    batches = [calibration[i : i + batch] for i in range(0, len(calibration), batch)]
    with contextlib.redirect_stdout(sys.stderr):  # its progress bar: stdout may carry a command's --json
        quantized = nncf.quantize(
            model, nncf.Dataset(batches), subset_size=len(batches), ignored_scope=nncf.IgnoredScope(names=tail)
        )
    ov.save_model(quantized, out_path, compress_to_fp16=False)


def _normalisation(model_path: Path) -> list[str]:
    """The nodes of the final L2 normalisation, whose arithmetic must stay in fp32."""
    import onnx

    nodes = onnx.load(str(model_path), load_external_data=False).graph.node
    return [node.name for node in nodes[_after_bottleneck([node.op_type for node in nodes]) :]]


def _after_bottleneck(op_types: Sequence[str]) -> int:
    """Where FaceNet's L2 normalisation starts in a graph's operations (in order, by type):
    just after the bottleneck layer, the last matrix product (``Gemm`` or ``MatMul`` in ONNX;
    OpenVINO reads either as ``MatMul``). Both quantizers leave everything from there in fp32."""
    return 1 + max(i for i, kind in enumerate(op_types) if kind in ("Gemm", "MatMul"))
