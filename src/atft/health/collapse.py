"""The collapse guard: forecasts of one day that all say the same thing rank nothing.

:class:`DegeneracyGuard` keeps, per horizon, an EMA of the per-day std(pred)/std(target) (each batch is one
day's cross-section); after ``patience`` consecutive bad checks it resets the head (noise of a logged scale,
:func:`reset_head`), aborts or warns. The EMA stays on the device; a check (a sync) comes every
``health.degeneracy.every`` steps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from atft.config import DegeneracyConfig
from atft.health.events import HealthEvent
from atft.metrics.ranks import masked_centred


def day_std_ratio(point: Tensor, y: Tensor, y_mask: Tensor) -> Tensor:
    """(H,) per-horizon std(pred)/std(target) over the day's labelled stocks (NaN with fewer than 3).

    Masked, not indexed (:func:`~atft.metrics.ranks.masked_centred`): no host sync on a GPU, every day.
    """
    pred, target = (masked_centred(x.float(), y_mask).square().sum(0) for x in (point, y))
    return torch.where(y_mask.sum(0) >= 3, (pred / target).sqrt(), torch.nan)


@dataclass
class _HorizonState:
    ema: float = math.nan
    bad: int = 0
    degenerate: bool = False
    checks: int = 0
    failed: int = 0
    resets: int = 0


class DegeneracyGuard:
    """Per-horizon collapse guard on per-day cross-sections; counts checks, failures and resets."""

    def __init__(self, cfg: DegeneracyConfig, horizons: list[int]) -> None:
        self.cfg, self.horizons = cfg, horizons
        self.ema: Tensor | None = None
        self.state = [_HorizonState() for _ in horizons]

    def update(self, ratio: Tensor) -> None:
        """Fold one day's (H,) std(pred)/std(target) into the EMA. A horizon without a reading that day (NaN)
        keeps its EMA; one without an EMA yet starts at its first reading."""
        if self.ema is None:
            self.ema = ratio.clone()
            return
        blended = self.cfg.ema * self.ema + (1 - self.cfg.ema) * ratio
        self.ema = torch.where(torch.isnan(ratio), self.ema, torch.where(torch.isnan(self.ema), ratio, blended))

    def due(self, step: int) -> bool:
        return step > self.cfg.warmup_steps and step % self.cfg.every == 0 and self.ema is not None

    def check(self, step: int) -> tuple[list[HealthEvent], list[int]]:
        """Events of this check, and the horizon indices whose heads must be reset now."""
        assert self.ema is not None
        events, reset = [], []
        for k, (h, s, value) in enumerate(zip(self.horizons, self.state, self.ema.tolist(), strict=True)):
            s.checks += 1
            s.ema = value
            if not value < self.cfg.min_ratio:
                if s.degenerate:
                    events.append(HealthEvent("degeneracy_recovered", step, value, "info", horizon=h))
                s.bad, s.degenerate = 0, False
                continue
            s.failed += 1
            s.bad += 1
            events.append(
                HealthEvent(
                    "degeneracy_check_failed",
                    step,
                    value,
                    "warning",
                    horizon=h,
                    message=f"EMA of per-day std(pred)/std(target) {value:.3g} < {self.cfg.min_ratio:g} "
                    f"({s.bad} in a row)",
                )
            )
            if s.bad >= self.cfg.patience:
                s.degenerate, s.bad = True, 0
                events.append(
                    HealthEvent(
                        "predictions_collapsed",
                        step,
                        value,
                        "critical",
                        horizon=h,
                        message=f"{self.cfg.patience} bad checks in a row; action: {self.cfg.action}",
                    )
                )
                if self.cfg.action == "reset":
                    s.resets += 1
                    reset.append(k)
        return events, reset

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps, so a resumed run checks, fails and resets exactly as an unbroken one."""
        return {"ema": self.ema, "horizons": [asdict(s) for s in self.state]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema = state["ema"]
        self.state = [_HorizonState(**s) for s in state["horizons"]]

    def counters(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for h, s in zip(self.horizons, self.state, strict=True):
            out |= {
                f"degeneracy_checks_{h}d": s.checks,
                f"degeneracy_failed_{h}d": s.failed,
                f"degeneracy_resets_{h}d": s.resets,
                f"dispersion_ema_{h}d": s.ema,
            }
        return out


def reset_head(head: nn.Module, scale: float, generator: torch.Generator) -> None:
    """Add N(0, scale^2) noise to every parameter of a collapsed head (logged with its scale)."""
    with torch.no_grad():
        for p in head.parameters():
            p.add_(torch.randn(p.shape, generator=generator).to(p) * scale)
