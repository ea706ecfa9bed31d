"""Device and precision: one place decides where the run computes and in which dtype."""

from __future__ import annotations

import contextlib

import torch

from atft.config import TrainConfig
from atft.errors import ConfigError


def resolve_device(cfg: TrainConfig) -> torch.device:
    """``auto`` takes CUDA when present; asking for CUDA where there is none is a config error."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(["train.device = 'cuda': no CUDA device is visible here; allowed: auto, cpu"])
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast on CUDA and CPU when asked; the loss is computed in fp32 regardless (``atft.train.losses``)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
