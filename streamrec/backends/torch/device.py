"""Which device and which arithmetic the torch backend runs on, refused early with one line.

``fp32`` runs everywhere, as IEEE single precision: on CUDA, PyTorch would otherwise run
convolutions in TF32 (inputs rounded to 10-bit mantissas), enough to move an O-Net score by
1e-4. ``fp16`` needs CUDA. ``bf16`` needs a CUDA device of compute capability 8.0 (Ampere) or
later, or a CPU that computes in bf16 natively (AVX-512 BF16 or AMX tiles): elsewhere bf16 is
emulated through fp32 and slower than fp32 itself, so it is refused rather than offered.

Opening a device checks only that it exists, without starting CUDA in the process: the
processes that choose a backend (a pipeline's supervisor) are not the ones that run it. Asking
whether a GPU computes in bf16 does start it, in the process that asks.
"""

from __future__ import annotations

import torch

from streamrec.backends.base import default_threads
from streamrec.backends.cpu import require_bf16

__all__ = ["exact_fp32", "open_device", "reduced_dtype", "set_cpu_threads"]

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def open_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` as a device that exists here; ``ValueError`` otherwise."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise ValueError(f"device {name!r} is not supported by the torch backend; use cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        built = "with" if torch.version.cuda else "without"
        raise ValueError(f"device {name!r}: no CUDA device is visible (PyTorch {torch.__version__}, built {built} CUDA)")
    index = device.index or 0  # current_device() would start CUDA here
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here (cuda:0 ...)")
    return torch.device("cuda", index)


def reduced_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (``fp32``, ``fp16``, ``bf16``) on ``device``
    (``None`` for fp32); ``ValueError`` with the reason when the device cannot compute in it."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        if precision == "bf16" and torch.cuda.get_device_capability(device) < (8, 0):
            raise ValueError(f"{torch.cuda.get_device_name(device)} has no bf16 arithmetic; use fp16 or fp32")
        return _DTYPES[precision]
    if precision == "fp16":
        raise ValueError("fp16 needs a CUDA device; on the CPU use fp32 (or bf16 on a CPU with AVX-512 BF16 or AMX)")
    require_bf16()
    return _DTYPES[precision]


def exact_fp32() -> None:
    """Have CUDA compute float32 convolutions and matrix products in IEEE single precision, not
    TF32, as fp32 promises (and as the parity with the CPU backends needs). The setting is the
    whole process's; reduced precisions go through autocast and are not affected. Set through
    the flags every PyTorch release since 1.7 has: with PyTorch 2.9's per-operator settings
    instead, reading these flags (as ``torch.backends.cudnn.flags()`` does) raises."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def set_cpu_threads(threads: int | None) -> None:
    """Give PyTorch's CPU kernels ``threads`` threads (``None``: every core this process may
    use). The setting is the whole process's: PyTorch has one intra-op pool."""
    torch.set_num_threads(threads or default_threads())
