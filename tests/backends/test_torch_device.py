"""Devices and precisions of the torch backend: what this machine can run, and one clear line
for what it cannot."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from streamrec.backends import BACKEND_PRECISIONS
from streamrec.backends.base import BackendOptions
from streamrec.backends.torch import device as dev
from streamrec.backends.torch.nets import load_nets

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
    with pytest.raises(ValueError, match=r"the torch backend computes in fp32, fp16, bf16 \(got 'int8'\)"):
        dev.reduced_dtype(cpu, "int8")
    if dev.cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        assert dev.reduced_dtype(cpu, "bf16") == torch.bfloat16
    else:
        with pytest.raises(ValueError, match="bf16 on the CPU needs AVX-512 BF16 or AMX, and .* has neither; use fp32"):
            dev.reduced_dtype(cpu, "bf16")


def test_every_precision_offered_is_computed():
    """What the commands offer for the torch backend it computes, where the device can: a
    precision it offers is never refused as unknown."""
    for precision in BACKEND_PRECISIONS["torch"]:
        try:
            dev.reduced_dtype(torch.device("cpu"), precision)
        except ValueError as exc:
            assert "needs" in str(exc), exc


def test_the_thread_budget_is_applied():
    before = torch.get_num_threads()
    try:
        load_nets(torch.device("cpu"), "fp32", BackendOptions(threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_openmp_waits_passively_unless_told_otherwise():
    """PyTorch's OpenMP threads spinning on busy shared cores stall each other (see the
    package's docstring): the backend asks for passive waiting, before torch loads."""
    probe = "import os, streamrec.backends.torch; print(os.environ['OMP_WAIT_POLICY'])"
    for preset, expected in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if preset:
            env["OMP_WAIT_POLICY"] = preset
        result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected
