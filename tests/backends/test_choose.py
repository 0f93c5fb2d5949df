"""``auto``: the backend, precision and device this machine runs fastest within the accuracy
bound, and the reasons for what it passed over; named values are kept as given."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from streamrec.backends import BackendOptions, backend_class
from streamrec.backends.choose import CANDIDATES, Choice, choose
from streamrec.backends.cpu import cpu_info
from streamrec.engines import openvino_int8_buildable
from tests.conftest import run_cli

HAS_NVIDIA_DRIVER = Path("/proc/driver/nvidia/version").exists()
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
AMX = "amx_int8" in (cpu_info().flags or ())
#: where auto takes OpenVINO's int8: a CPU with AMX, and the NNCF-quantized FaceNet buildable
OPENVINO_INT8_FIRST = AMX and openvino_int8_buildable()


def _cuda() -> bool:
    if not HAS_NVIDIA_DRIVER:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _expected_auto() -> tuple[str, str, str]:
    """What auto must take on each kind of machine this project runs on (module docstring of
    streamrec/backends/choose.py)."""
    if _cuda():
        return ("torch", "fp16", "cuda")
    if OPENVINO_INT8_FIRST:
        return ("openvino", "int8", "cpu")
    if cpu_info().bf16 and HAS_OPENVINO:
        return ("openvino", "bf16", "cpu")
    if cpu_info().bf16:
        return ("torch", "bf16", "cpu")
    return ("onnxruntime", "int8", "cpu")


def test_named_values_are_kept_as_given_without_probing():
    choice = choose("openvino", "int8", "cpu")
    assert choice == Choice("openvino", "int8", "cpu")
    assert choice.describe() == "openvino int8 on cpu"
    assert choose("onnxruntime", "fp32", detection="bf16").detection == "bf16"  # refused when the backend opens


def test_detection_runs_in_fp32_unless_bf16_is_asked_for():
    """bf16 detection is outside the accuracy bound (LFW View 1), so ``auto`` never takes it;
    asked for, it is said."""
    assert choose("auto", "auto").detection == "fp32"
    asked = choose("openvino", "auto", detection="bf16")
    assert asked.detection == "bf16" and asked.describe().endswith("; detection in bf16")


def test_bf16_detection_is_refused_in_one_line_on_other_backends(faces_dir: Path):
    result = run_cli("detect", "--backend", "onnxruntime", "--detection-precision", "bf16", str(min(faces_dir.glob("*/*.jpg"))))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line == "streamrec: error: detection in bf16 runs on the openvino backend only (got onnxruntime)"


def test_auto_takes_the_fastest_this_machine_runs_and_says_why():
    choice = choose("auto", "auto")
    assert (choice.backend, choice.precision, choice.device) == _expected_auto()
    assert choice.automatic
    backend_class(choice.backend).check_options(BackendOptions(precision=choice.precision, device=choice.device))
    line = choice.describe()
    assert line.startswith(f"{choice.backend} {choice.precision} on {choice.device} (auto")
    if not HAS_NVIDIA_DRIVER:
        assert "no NVIDIA driver loaded (torch fp16 on cuda" in line
    if not cpu_info().bf16:
        assert "this CPU has neither AVX-512 BF16 nor AMX (openvino bf16 on cpu" in line


def test_auto_takes_int8_only_for_the_published_model_and_never_tensorrt():
    """int8 holds the accuracy bound on either CPU backend, and is fastest on OpenVINO where the
    CPU has AMX, on ONNX Runtime elsewhere; a trained model has no int8 engine, so auto runs it
    in the fastest precision it has."""
    assert choose("auto", "auto").backend != "tensorrt"
    if OPENVINO_INT8_FIRST or not AMX:
        int8 = choose("auto", "int8")
        assert (int8.backend, int8.precision, int8.device) == ("openvino" if AMX else "onnxruntime", "int8", "cpu")
    if not AMX:
        assert choose("openvino", "auto").precision != "int8"
        assert "this CPU lacks amx_int8 (openvino int8 on cpu)" in int8.describe()
    else:  # ONNX Runtime's int8 scored View 1 0.003 below fp32 on a CPU with AMX
        assert choose("onnxruntime", "auto").precision == "fp32"
        assert "outside the accuracy bound on CPUs with amx_int8 (onnxruntime int8 on cpu)" in choose("onnxruntime", "auto").describe()
    trained = choose("auto", "auto", model="trained-1")
    assert trained.precision != "int8"
    if AMX and not _cuda():  # the first CPU entry is OpenVINO's int8, passed over for the trained model
        assert "model 'trained-1' has no int8 engine: only the published model is quantized (openvino int8 on cpu" in trained.describe()
    if not _cuda() and not cpu_info().bf16:
        assert (choose("onnxruntime", "auto").precision, choose("auto", "auto").precision) == ("int8", "int8")
        assert (trained.backend, trained.precision) == ("onnxruntime", "fp32")
        assert ("model 'trained-1' has no int8 engine: only the published model is quantized (onnxruntime int8 on cpu)"
                in trained.describe())
        with pytest.raises(ValueError, match="^nothing here runs backend auto precision int8: .*model 'trained-1' has no int8"):
            choose("auto", "int8", model="trained-1")


def test_auto_precision_of_a_named_backend():
    assert choose("onnxruntime", "auto").precision == ("fp32" if AMX else "int8")  # it has no bf16
    bf16 = cpu_info().bf16
    openvino = choose("openvino", "auto")
    assert openvino.precision == ("int8" if OPENVINO_INT8_FIRST else "bf16" if bf16 else "fp32")
    assert ("neither AVX-512 BF16 nor AMX (openvino bf16 on cpu)" in openvino.describe()) == (not bf16)


def test_a_device_narrows_what_auto_may_take():
    assert choose("auto", "auto", "cpu").device == "cpu"
    assert choose("openvino", "auto", "gpu") == Choice("openvino", "fp32", "gpu", automatic=True)  # the backend checks it
    with pytest.raises(ValueError, match="^nothing here runs backend auto precision auto device tpu: no backend offers it$"):
        choose("auto", "auto", "tpu")


@pytest.mark.skipif(HAS_NVIDIA_DRIVER, reason="this machine has an NVIDIA driver: fp16 may run here")
def test_what_cannot_run_here_is_one_line_with_every_reason():
    with pytest.raises(ValueError) as caught:
        choose("auto", "fp16")
    assert str(caught.value) == "nothing here runs backend auto precision fp16: no NVIDIA driver loaded (torch fp16 on cuda)"


def test_every_entry_names_a_backend_and_precision_it_offers():
    for candidate in CANDIDATES:
        assert candidate.precision in backend_class(candidate.backend).precisions, candidate


def test_the_still_image_commands_say_what_auto_took(faces_dir: Path):
    photo = min(faces_dir.glob("*/*.jpg"))
    result = run_cli("detect", "--backend", "auto", "--precision", "auto", str(photo), timeout=300)
    assert result.returncode == 0, result.stderr
    backend, precision, device = _expected_auto()
    assert f"streamrec: inference on {backend} {precision} on {device} (auto" in result.stderr
