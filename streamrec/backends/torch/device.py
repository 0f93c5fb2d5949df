"""Which device and which arithmetic the torch backend runs on, refused early with one line.

``fp32`` runs everywhere. ``fp16`` needs CUDA. ``bf16`` needs CUDA with bf16 support, or a CPU
that computes in bf16 natively (AVX-512 BF16 or AMX tiles): elsewhere PyTorch emulates bf16
through fp32 and it is slower than fp32 itself, so it is refused rather than offered.
"""

from __future__ import annotations

import torch

from streamrec.backends.base import default_threads
from streamrec.backends.cpu import require_bf16

__all__ = ["open_device", "reduced_dtype", "set_cpu_threads"]

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
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here (cuda:0 ...)")
    return torch.device("cuda", index)


def reduced_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (``fp32``, ``fp16``, ``bf16``) on ``device``
    (``None`` for fp32); ``ValueError`` with the reason when the device cannot compute in it."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"{torch.cuda.get_device_name(device)} has no bf16 arithmetic; use fp16 or fp32")
        return _DTYPES[precision]
    if precision == "fp16":
        raise ValueError("fp16 needs a CUDA device; on the CPU use fp32 (or bf16 on a CPU with AVX-512 BF16 or AMX)")
    require_bf16()
    return _DTYPES[precision]


def set_cpu_threads(threads: int | None) -> None:
    """Give PyTorch's CPU kernels ``threads`` threads (``None``: every core this process may
    use). The setting is the whole process's: PyTorch has one intra-op pool."""
    torch.set_num_threads(threads or default_threads())
