"""Precision that fits the hardware: ``auto`` resolves per device; bf16 forced where it is emulated warns."""

from __future__ import annotations

import pytest
import torch

from atft.config import load_config
from atft.train import runtime
from atft.train.runtime import CpuInfo, bf16_warning, missing_bf16_flags, parse_cpuinfo, resolve_precision

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz
flags\t\t: fpu sse sse2 avx avx2 fma

processor\t: 1
model name\t: another core
flags\t\t: avx512_bf16
"""
ARM = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes sha2 bf16 i8mm sve
CPU implementer\t: 0x41
"""


def test_parse_cpuinfo_reads_the_first_core() -> None:
    cpu = parse_cpuinfo(X86, "x86_64")
    assert cpu.model == "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz"
    assert cpu.flags == {"fpu", "sse", "sse2", "avx", "avx2", "fma"}
    assert cpu.shown_flags() == "avx2 -avx512f -avx512_bf16 -amx_bf16"
    arm = parse_cpuinfo(ARM, "aarch64")
    assert (arm.model, "bf16" in arm.flags) == ("unknown aarch64 CPU", True)


@pytest.mark.parametrize(
    ("machine", "flags", "missing"),
    [
        ("x86_64", {"avx", "avx2", "fma"}, ("avx512_bf16", "amx_bf16")),  # AVX2 only: Haswell .. Zen 3
        ("x86_64", {"avx2", "avx512f", "avx512bw"}, ("avx512_bf16", "amx_bf16")),  # AVX-512 without BF16: Skylake-SP
        ("x86_64", {"avx2", "avx512f", "avx512_bf16"}, ()),  # Cooper Lake, Zen 4
        ("x86_64", {"avx2", "amx_bf16", "amx_tile"}, ()),  # Sapphire Rapids (AMX)
        ("aarch64", {"fp", "asimd", "sve"}, ("bf16",)),  # Graviton 2
        ("aarch64", {"fp", "asimd", "bf16"}, ()),  # Graviton 3
        ("x86_64", set(), ()),  # no /proc/cpuinfo: unknown, so no claim
    ],
)
def test_missing_bf16_flags(machine: str, flags: set[str], missing: tuple[str, ...]) -> None:
    assert missing_bf16_flags(CpuInfo("cpu", machine, frozenset(flags))) == missing


def test_bf16_forced_on_a_cpu_without_native_bf16_warns_naming_it() -> None:
    cpu = torch.device("cpu")
    avx2 = CpuInfo("AMD EPYC 7R13 Processor", "x86_64", frozenset({"avx2", "fma"}))
    warning = bf16_warning(cpu, "bf16", avx2)
    assert warning is not None
    assert "CPU 'AMD EPYC 7R13 Processor' without avx512_bf16 or amx_bf16" in warning
    assert "train.precision to auto or fp32" in warning
    amx = CpuInfo("Intel Xeon Platinum 8480+", "x86_64", frozenset({"avx2", "amx_bf16"}))
    assert bf16_warning(cpu, "bf16", amx) is None
    assert bf16_warning(cpu, "fp32", avx2) is None and bf16_warning(cpu, "auto", avx2) is None


def test_this_machine_warns_iff_its_cpu_lacks_native_bf16() -> None:
    runtime.cpu_info.cache_clear()
    cpu = runtime.cpu_info()
    warned = bf16_warning(torch.device("cpu"), "bf16") is not None
    assert warned == bool(missing_bf16_flags(cpu))
    if cpu.flags:
        native = {"avx512_bf16", "amx_bf16", "bf16"} & cpu.flags
        assert warned == (not native)


def test_auto_is_fp32_on_cpu_and_forced_values_stay() -> None:
    cfg = load_config(None, ["train.device=cpu"])
    assert cfg.train.precision == "auto"  # the default
    device = runtime.resolve_device(cfg.train)
    assert resolve_precision(device, "auto") == "fp32"
    assert [resolve_precision(device, p) for p in ("fp32", "bf16")] == ["fp32", "bf16"]


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_on_cuda_follows_native_bf16(monkeypatch: pytest.MonkeyPatch, native: bool, expected: str) -> None:
    monkeypatch.setattr(runtime, "_cuda_bf16", lambda index: native)  # no GPU here: the one CUDA query, stubbed
    assert resolve_precision(torch.device("cuda", 0), "auto") == expected
    assert resolve_precision(torch.device("cuda", 0), "fp32") == "fp32"


def test_autocast_uses_the_resolved_precision() -> None:
    cpu = torch.device("cpu")
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with runtime.autocast(cpu, "auto"):
        assert (a @ b).dtype == torch.float32
    with runtime.autocast(cpu, "bf16"):
        assert (a @ b).dtype == torch.bfloat16


def test_precision_refuses_an_unknown_value_naming_the_allowed_ones() -> None:
    from atft.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train.precision = 'fp16'.*'auto', 'fp32' or 'bf16'"):
        load_config(None, ["train.precision=fp16"])
