"""Devices and precisions of the torch backend: what this machine can run, and one clear line
for what it cannot."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from streamrec.backends import BackendOptions, backend_class
from streamrec.backends.cpu import cpu_info
from streamrec.backends.torch import TorchNet
from streamrec.backends.torch import device as dev
from streamrec.engines import ENGINE_FILES

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def test_the_cpu_is_always_there():
    assert dev.open_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(
    "name, message",
    [("tpu", "unknown device 'tpu'; use cpu, cuda or cuda:N"), ("meta", "device 'meta' is not supported by the torch backend")],
)
def test_unknown_devices_are_refused(name, message):
    with pytest.raises(ValueError, match=message):
        dev.open_device(name)


@needs_no_cuda
def test_cuda_without_a_cuda_device_is_refused():
    with pytest.raises(ValueError, match=r"device 'cuda:0': no CUDA device is visible \(PyTorch "):
        dev.open_device("cuda:0")


@needs_cuda
def test_a_cuda_device_that_does_not_exist_is_refused():
    count = torch.cuda.device_count()
    with pytest.raises(ValueError, match=f"only {count} CUDA device"):
        dev.open_device(f"cuda:{count}")


def test_precisions_on_the_cpu():
    cpu = torch.device("cpu")
    assert dev.reduced_dtype(cpu, "fp32") is None
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        dev.reduced_dtype(cpu, "fp16")
    if cpu_info().bf16:
        assert dev.reduced_dtype(cpu, "bf16") == torch.bfloat16
    else:
        with pytest.raises(ValueError, match=r"bf16 needs a CPU with AVX-512 BF16 or AMX \(avx512_bf16 or amx_bf16\)"):
            dev.reduced_dtype(cpu, "bf16")


def test_the_registry_opens_the_torch_backend_and_its_checks():
    """``torch`` is a backend like the others: its class from the registry, its precisions,
    and the check every command makes before loading anything."""
    cls = backend_class("torch")
    assert cls is TorchNet and cls.precisions == ("fp32", "bf16", "fp16")
    cls.check_options(BackendOptions())
    with pytest.raises(ValueError, match=r"the torch backend runs fp32 and bf16 and fp16 only \(got precision 'int8'\)"):
        cls.check_options(BackendOptions(precision="int8"))
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        cls.check_options(BackendOptions(device="tpu"))


def test_only_the_networks_of_the_engines_are_opened(engine_dir):
    with pytest.raises(ValueError, match="facenet_int8.onnx: the torch backend runs the networks of pnet.onnx, "):
        TorchNet(engine_dir / ENGINE_FILES["facenet_int8"], BackendOptions())


def test_the_thread_budget_is_applied(engine_dir):
    before = torch.get_num_threads()
    try:
        TorchNet(engine_dir / ENGINE_FILES["rnet"], BackendOptions(threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_openmp_waits_passively_unless_told_otherwise():
    """PyTorch's OpenMP threads spinning on busy shared cores stall each other (see the
    package's docstring): the backend asks for passive waiting, before torch loads (a policy the
    environment sets is left alone: ``os.environ.setdefault``)."""
    probe = "import os, streamrec.backends.torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "PASSIVE"


def test_exact_fp32_switches_tf32_off_where_pytorch_still_reads_its_flags():
    """What CUDA's fp32 runs under: no TF32 for convolutions or matrix products, set so that
    PyTorch's own readers of the flags (``cudnn.flags()``) still work afterwards."""
    dev.exact_fp32()
    assert torch.backends.cudnn.allow_tf32 is False and torch.backends.cuda.matmul.allow_tf32 is False
    with torch.backends.cudnn.flags(enabled=True):
        assert torch.backends.cudnn.enabled
