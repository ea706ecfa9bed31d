"""Device and precision: one place decides where the run computes and in which dtype.

``train.precision: auto`` (the default) is bf16 where the hardware computes it natively -- a CUDA device of
compute capability 8.0 or newer (A100, H100) -- and fp32 everywhere else. On a CPU, bf16 autocast is fast
only with AVX-512-BF16 or AMX (x86) or the BF16 extension (Arm); without them every bf16 matmul is
emulated, and a run trains several times slower than in fp32. So ``auto`` never picks bf16 on a CPU, and
forcing it on a CPU without those flags prints a warning (:func:`bf16_warning`) that names the CPU.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from atft.config import TrainConfig
from atft.errors import ConfigError

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
"""The x86 flags that decide CPU training speed: the benchmarks print them beside their figures."""

NATIVE_BF16 = {"x86_64": ("avx512_bf16", "amx_bf16"), "aarch64": ("bf16",)}
"""Per architecture (``platform.machine()``), the ``/proc/cpuinfo`` flags of which any one computes bf16 natively."""


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as ``/proc/cpuinfo`` describes its first core; ``flags`` is empty where that file is absent."""

    model: str
    machine: str
    flags: frozenset[str]

    def describe(self) -> str:
        """``Intel(R) Xeon(R) ... (x86_64; avx2 avx512f ...)``: the line every benchmark prints beside its figures."""
        return f"{self.model} ({self.machine}; {self.shown_flags()})"

    def shown_flags(self, names: tuple[str, ...] = CPU_FLAGS) -> str:
        """``avx2 avx512f -avx512_bf16 -amx_bf16``: each flag of ``names``, ``-`` marking one it lacks."""
        if not self.flags:
            return "flags unknown"
        return " ".join(name if name in self.flags else f"-{name}" for name in names)


def parse_cpuinfo(text: str, machine: str) -> CpuInfo:
    """The model name and flags of the first core in ``/proc/cpuinfo`` text (x86: ``flags``, Arm: ``Features``;
    an Arm kernel often names no model, and then the architecture stands in)."""
    model, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return CpuInfo(model or f"unknown {machine} CPU", machine, flags)


@functools.cache
def cpu_info(path: str = "/proc/cpuinfo") -> CpuInfo:
    """This machine's CPU (Linux reads ``path``; elsewhere the model is ``platform.processor()``, no flags)."""
    machine = platform.machine().lower()
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return CpuInfo(platform.processor() or f"unknown {machine} CPU", machine, frozenset())
    return parse_cpuinfo(text, machine)


def missing_bf16_flags(cpu: CpuInfo) -> tuple[str, ...]:
    """The native-bf16 flags ``cpu`` lacks, all of them (empty: it has one, or its flags are unknown)."""
    native = NATIVE_BF16.get(cpu.machine, NATIVE_BF16["x86_64"])
    if not cpu.flags or any(flag in cpu.flags for flag in native):
        return ()
    return native


def resolve_device(cfg: TrainConfig) -> torch.device:
    """``auto`` takes CUDA when present; asking for CUDA where there is none is a config error."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(["train.device = 'cuda': no CUDA device is visible here; allowed: auto, cpu"])
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def resolve_precision(device: torch.device, precision: str) -> str:
    """``fp32`` or ``bf16``: ``auto`` is bf16 on a CUDA device with native bf16, else fp32; the others as set."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" and _cuda_bf16(_index(device)) else "fp32"


def bf16_warning(device: torch.device, precision: str, cpu: CpuInfo | None = None) -> str | None:
    """The warning for bf16 forced where it is emulated (naming the CPU and the flags it lacks, or the GPU).

    None where ``precision`` is not ``bf16`` or the device computes bf16 natively (or its flags are unknown).
    """
    if precision != "bf16":
        return None
    advice = "bf16 is emulated there and trains several times slower than fp32; set train.precision to auto or fp32"
    if device.type == "cuda":
        if _cuda_bf16(_index(device)):
            return None
        return f"train.precision = 'bf16' on {torch.cuda.get_device_name(device)} (before Ampere): {advice}"
    cpu = cpu or cpu_info()
    missing = missing_bf16_flags(cpu)
    if not missing:
        return None
    return f"train.precision = 'bf16' on CPU '{cpu.model}' without {' or '.join(missing)}: {advice}"


def _index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


@functools.cache
def _cuda_bf16(index: int) -> bool:
    """Native bf16 on CUDA device ``index`` (compute capability 8.0+; cached: autocast asks at every batch)."""
    with torch.cuda.device(index):
        return torch.cuda.is_bf16_supported(including_emulation=False)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast when ``precision`` resolves to bf16 (:func:`resolve_precision`); the loss is computed in
    fp32 regardless (``atft.train.losses``)."""
    enabled = resolve_precision(device, precision) == "bf16"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)
