"""What ``--backend auto`` and ``--precision auto`` mean on this machine, and why.

``auto`` takes the first entry of :data:`CANDIDATES` that this machine runs: the fastest
FaceNet first, among the choices whose accuracy holds to ONNX Runtime fp32 (LFW View 1 within
0.002, tests/backends). So:

* an NVIDIA GPU with PyTorch's CUDA build: the ``torch`` backend (the whole cascade on the GPU)
  in fp16, then fp32;
* a CPU with AMX and OpenVINO installed (with NNCF, which builds its int8 FaceNet): ``openvino``
  in int8, whose quantized layers run on AMX's int8 tiles: on an Intel Xeon with AMX, 1.15 ms
  per face at batch 32 against 1.98 in bf16 and 9.6 in fp32 in one run (docs/speed.md), LFW
  View 1 0.986 there, as fp32 (0.985 on an AVX2 CPU; 0.983, outside the bound, on the same
  Xeon's kernels without AMX);
* another CPU that computes in bf16 (AVX-512 BF16) with OpenVINO installed: ``openvino`` in
  bf16, about 5x faster per face than fp32 on an AMX CPU (on that Xeon's AVX-512 BF16 kernels
  without AMX, slower than fp32; not measured on an AMD EPYC with AVX-512 BF16);
* any other CPU: ``onnxruntime`` in int8, the quantized FaceNet (about half fp32's time per
  face; LFW View 1 0.985 against fp32's 0.986, with the same VAL, AUC and threshold,
  docs/accuracy.md); fp32 for a model ``streamrec train`` wrote, which has no int8 engine, and
  on a CPU with AMX, where ONNX Runtime's int8 scored 0.983, outside the bound.

OpenVINO's int8 is an entry on AMX CPUs only: on the AVX2 CPU it was also timed on, it embeds a
face no faster than ONNX Runtime's int8 and pays OpenVINO's worker wait on every call of a frame
(docs/speed.md); elsewhere ask for it by name. TensorRT is never picked: its engines take minutes
to compile on first use, so it runs only when asked for. Nor is ``triton``, which has no entry:
it needs the address of a server ([triton] url).

Every entry passed over is kept with the backend's own one-line reason, so the caller can say
what was picked and why. The probes are cheap: a GPU entry is passed over without importing
PyTorch where no NVIDIA driver is loaded, and a CPU one that needs an instruction set without
importing OpenVINO on a CPU without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Literal, get_args

from streamrec.backends import BackendName, BackendOptions, backend_class
from streamrec.backends.cpu import cpu_info
from streamrec.engines import PUBLISHED_MODEL, int8_refusal, openvino_int8_buildable
from streamrec.faces import DetectionPrecision, Precision

__all__ = ["AUTO", "BACKEND_CHOICES", "CANDIDATES", "DETECTION_MEANINGS", "PRECISION_CHOICES", "PRECISION_MEANINGS",
           "BackendChoice", "Choice", "PrecisionChoice", "choose"]

AUTO: Final = "auto"
#: what ``--backend`` and ``[pipeline] backend`` accept
BackendChoice = Literal["auto", BackendName]
BACKEND_CHOICES: tuple[BackendChoice, ...] = get_args(BackendChoice)
#: what ``--precision`` and ``[pipeline] precision`` accept
PrecisionChoice = Literal["auto", Precision]
PRECISION_CHOICES: tuple[PrecisionChoice, ...] = get_args(PrecisionChoice)
#: what each of those means, said alike by ``--help`` and the configuration's description
PRECISION_MEANINGS = (
    "auto (the fastest the backend runs here whose accuracy holds, for the published model: int8 on openvino on a CPU "
    "with AMX, else bf16 where the CPU has it, else int8 on onnxruntime); fp32 (the published model); bf16 (openvino or "
    "torch on a CPU with AVX-512 BF16 or AMX, torch on CUDA); fp16 (tensorrt, torch on CUDA); or int8 "
    "(onnxruntime or openvino: a quantized engine, 2-3x faster on CPUs, slightly less accurate; "
    "docs/accuracy.md)"
)
#: what ``--detection-precision`` and ``[detector] precision`` mean, said alike by ``--help`` and
#: the configuration's description
DETECTION_MEANINGS = (
    "fp32 (the published nets as converted); or bf16 (openvino on a CPU with AVX-512 BF16 or AMX: R-Net and O-Net "
    "in bf16, P-Net in fp32; about a fifth less time per frame, the same faces with boxes and landmarks within "
    "2.5 px, but the crops move with them: LFW View 1 0.982-0.984 against 0.986, outside the accuracy bound, so "
    "never chosen by auto; docs/accuracy.md)"
)
#: run only when named: TensorRT compiles its engines for minutes on first use
_NAMED_ONLY = ("tensorrt",)
#: where the kernel says an NVIDIA driver is loaded
_NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


@dataclass(frozen=True)
class _Candidate:
    backend: BackendName
    precision: Precision
    device: str  #: ``cpu`` or ``cuda``
    #: a CPU flag (as /proc/cpuinfo spells it) the entry is the fastest with, passed over without it
    cpu_flag: str | None = None
    #: a CPU flag the entry's accuracy does not hold with (LFW View 1 measured outside the bound)
    inaccurate_with: str | None = None

    def __str__(self) -> str:
        return f"{self.backend} {self.precision} on {self.device}"


#: fastest first; see the module's docstring for the order
CANDIDATES: tuple[_Candidate, ...] = (
    _Candidate("tensorrt", "fp16", "cuda"),
    _Candidate("torch", "fp16", "cuda"),
    _Candidate("torch", "bf16", "cuda"),
    _Candidate("tensorrt", "fp32", "cuda"),
    _Candidate("torch", "fp32", "cuda"),
    _Candidate("openvino", "int8", "cpu", cpu_flag="amx_int8"),
    _Candidate("openvino", "bf16", "cpu"),
    _Candidate("torch", "bf16", "cpu"),
    _Candidate("onnxruntime", "int8", "cpu", inaccurate_with="amx_int8"),
    _Candidate("onnxruntime", "fp32", "cpu"),
    _Candidate("openvino", "fp32", "cpu"),
    _Candidate("torch", "fp32", "cpu"),
)


@dataclass(frozen=True)
class Choice:
    """A backend, a precision and a device (``None``: the backend's own), and what ``auto``
    passed over to get there: each reason with the entries it ruled out."""

    backend: BackendName
    precision: Precision
    device: str | None
    passed_over: tuple[str, ...] = field(default=())  #: "REASON (ENTRY, ENTRY)" each
    automatic: bool = False
    #: how MTCNN's R-Net and O-Net compute (:attr:`streamrec.faces.ModelsConfig.detection`)
    detection: DetectionPrecision = "fp32"

    def describe(self) -> str:
        """One line: what runs, and why when ``auto`` chose it."""
        where = self.device or "cpu"
        line = f"{self.backend} {self.precision} on {where}"
        if self.automatic:
            line += f" (auto; passed over: {'; '.join(self.passed_over)})" if self.passed_over else " (auto)"
        return line + (f"; detection in {self.detection}" if self.detection != "fp32" else "")


def _device_kind(device: str | None) -> str | None:
    return None if not device else device.split(":", 1)[0]


def _refusal(candidate: _Candidate, device: str | None, model: str) -> str | None:
    """Why ``candidate`` cannot run ``model`` here (one line), or ``None`` when it can. An entry
    meant for another kind of CPU says so first, whatever the model."""
    flags = cpu_info().flags or ()
    if candidate.cpu_flag is not None and candidate.cpu_flag not in flags:
        return f"this CPU lacks {candidate.cpu_flag}"
    if candidate.precision == "int8" and (refusal := int8_refusal(model)):
        return refusal
    if candidate.device == "cuda" and not _NVIDIA_DRIVER.exists():
        return "no NVIDIA driver loaded"
    if candidate.device == "cpu" and candidate.precision == "bf16" and not cpu_info().bf16:
        return "this CPU has neither AVX-512 BF16 nor AMX"
    if candidate.inaccurate_with in flags:
        return f"LFW View 1 outside the accuracy bound on CPUs with {candidate.inaccurate_with}"
    if candidate.backend == "openvino" and candidate.precision == "int8" and not openvino_int8_buildable():
        return "OpenVINO's int8 FaceNet needs OpenVINO and NNCF: pip install 'streamrec[openvino]'"
    try:
        backend_class(candidate.backend).check_options(
            BackendOptions(precision=candidate.precision, device=device or candidate.device)
        )
    except ValueError as exc:
        return str(exc)
    return None


def choose(
    backend: BackendChoice, precision: PrecisionChoice, device: str | None = None, model: str = PUBLISHED_MODEL,
    detection: DetectionPrecision = "fp32",
) -> Choice:
    """The backend, precision and device to run FaceNet ``model`` with (the published one, or a
    trained one's name), ``auto`` in either resolved for this machine, with the precision
    ``detection`` runs in as given (it has no ``auto``: bf16 detection is outside the accuracy
    bound).

    Named values are kept as given (whether they run here is the backend's to say when it
    opens), and so is a named backend none of whose entries runs here (on an Intel GPU, for
    OpenVINO), in fp32. Raises ``ValueError`` (one line) when no backend runs what was named.
    """
    return replace(_embedding(backend, precision, device, model), detection=detection)


def _embedding(backend: BackendChoice, precision: PrecisionChoice, device: str | None, model: str) -> Choice:
    """:func:`choose` for FaceNet alone, detection left fp32."""
    if backend != AUTO and precision != AUTO:
        return Choice(backend, precision, device)
    kind = _device_kind(device)
    passed: list[tuple[str, str]] = []
    for candidate in CANDIDATES:
        if backend == AUTO and candidate.backend in _NAMED_ONLY:
            continue
        if backend not in (AUTO, candidate.backend) or precision not in (AUTO, candidate.precision):
            continue
        if kind is not None and kind != candidate.device:
            continue
        reason = _refusal(candidate, device, model)
        if reason is None:
            return Choice(candidate.backend, candidate.precision, device or candidate.device, _grouped(passed), True)
        passed.append((reason, str(candidate)))
    if backend != AUTO:  # its own check, when it opens, says best why it cannot run here
        return Choice(backend, "fp32" if precision == AUTO else precision, device, automatic=True)
    asked = " ".join(f"{name} {value}" for name, value in (("backend", backend), ("precision", precision),
                                                           ("device", device)) if value)
    raise ValueError(f"nothing here runs {asked}: {'; '.join(_grouped(passed)) or 'no backend offers it'}")


def _grouped(passed: list[tuple[str, str]]) -> tuple[str, ...]:
    """``(reason, entry)`` pairs as one ``"reason (entry, entry)"`` per reason, in first-seen order."""
    entries: dict[str, list[str]] = {}
    for reason, entry in passed:
        entries.setdefault(reason, []).append(entry)
    return tuple(f"{reason} ({', '.join(names)})" for reason, names in entries.items())
