"""The CPU this process runs on: its model name and the instruction sets that decide which
precisions can be fast, or can run at all.

bf16 arithmetic needs AVX-512 BF16 or AMX; int8 is fast with VNNI (AVX-512 or AVX) or AMX and
runs, slower, on AVX2 alone. Every benchmark records these flags, because a figure from one CPU
says little about another, and the bf16 refusal names the ones that are missing.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BF16_FLAGS", "CPU_FLAGS", "CpuInfo", "cpu_info", "require_bf16"]

#: the flags (as /proc/cpuinfo spells them) that matter for inference, fastest first
CPU_FLAGS = ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f", "avx_vnni", "avx2")
#: either of these makes bf16 arithmetic possible
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class CpuInfo:
    """``model``: the CPU's name; ``flags``: which of :data:`CPU_FLAGS` it has (``None`` where
    the operating system does not say)."""

    model: str
    flags: tuple[str, ...] | None

    @property
    def bf16(self) -> bool:
        """Whether the CPU computes in bf16 natively (AVX-512 BF16 or AMX)."""
        return self.flags is not None and any(flag in self.flags for flag in BF16_FLAGS)

    def describe(self) -> str:
        """``AMD EPYC (has: avx2; lacks: amx_bf16, ...)``: the name, the flags it has and lacks."""
        if self.flags is None:
            return f"{self.model} (instruction-set flags unknown)"
        lacking = [flag for flag in CPU_FLAGS if flag not in self.flags]
        return f"{self.model} (has: {', '.join(self.flags) or 'none'}; lacks: {', '.join(lacking) or 'none'})"


@functools.cache
def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """The CPU's model name and flags, from ``/proc/cpuinfo`` on Linux."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return CpuInfo(platform.processor() or "unknown CPU", None)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    present = set(fields.get("flags", "").split())
    return CpuInfo(fields.get("model name", platform.processor() or "unknown CPU"), tuple(f for f in CPU_FLAGS if f in present))


def require_bf16() -> None:
    """Raise ``ValueError`` (one line naming what is missing) unless this CPU computes in bf16:
    elsewhere libraries emulate bf16 through fp32, slower than fp32 itself, or quietly compute in
    fp32, so a backend refuses bf16 there rather than label fp32 results bf16."""
    if not cpu_info().bf16:
        raise ValueError(
            f"bf16 needs a CPU with AVX-512 BF16 or AMX ({' or '.join(BF16_FLAGS)}); this one has neither: "
            f"{cpu_info().describe()}"
        )
