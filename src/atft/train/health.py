"""Training health: monitors that say early, loudly and by name when a run stops learning.

Each monitor turns what it measures into :class:`HealthEvent` s, which the loop sends through the sinks as
``kind="health"`` records (one event stream: console, JSONL, TensorBoard, the Prometheus exporter).

* :class:`GradientMonitor` -- per named component, every N optimizer steps and at the first: gradient L2
  norm, largest tensor norm, tensors without gradient and under the warn threshold. ``vanishing_gradient``
  names a component under the threshold or without gradient; ``exploding_gradient`` one over the ceiling.
* :class:`ActivationGradients` -- hooks on the projected and the normalised features, registered once for
  the whole run, reporting the gradient norm reaching each every N steps.
* :class:`DegeneracyGuard` -- per horizon, an EMA of the per-day std(pred)/std(target) (each batch is one
  day's cross-section); after ``patience`` consecutive bad checks it resets the heads, aborts or warns.
* :class:`SignalMonitor` -- a rolling per-day training RankIC per horizon (``no_learning_signal`` when it
  stays within noise of zero after warm-up: healthy gradient norms alone never count as learning), and
  ``dead_input`` for a feature whose selection weight or cross-sectional variance is zero.

Everything accumulates on the device; values are read (a sync) only when a check is due.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from atft.config import DegeneracyConfig, GradMonitorConfig, SignalConfig
from atft.metrics.inference import mean_inference
from atft.metrics.ranks import day_rank_ic as day_rank_ic  # the per-day RankIC the loop feeds the monitor


@dataclass(frozen=True)
class HealthEvent:
    """One named finding: what, where (component / horizon / feature), the measured value, how bad."""

    name: str
    step: int
    value: float
    severity: str = "warning"
    component: str | None = None
    horizon: int | None = None
    feature: str | None = None
    message: str = ""

    def record(self) -> dict[str, object]:
        """The ``values`` of a ``log_dict("health", step, values)`` call."""
        return {k: v for k, v in asdict(self).items() if v is not None and k != "step"}


class GradientMonitor:
    """Per-component gradient statistics after unscaling and before clipping."""

    def __init__(self, components: dict[str, nn.Module], cfg: GradMonitorConfig) -> None:
        self.cfg = cfg
        self.params = {name: list(module.parameters()) for name, module in components.items()}

    def due(self, step: int) -> bool:
        return self.cfg.enabled and (step == 1 or step % self.cfg.every == 0)

    def measure(self) -> dict[str, dict[str, float]]:
        """{component: {l2, max, none, small}}; one host sync for all components."""
        per: dict[str, Tensor] = {}
        missing: dict[str, int] = {}
        for name, params in self.params.items():
            grads = [p.grad for p in params if p.grad is not None]
            missing[name] = len(params) - len(grads)
            per[name] = torch.stack(torch._foreach_norm(grads)).float() if grads else torch.zeros(0)
        stats = {}
        for name, norms in per.items():
            values = norms.cpu()
            stats[name] = {
                "l2": float(values.norm()) if len(values) else 0.0,
                "max": float(values.max()) if len(values) else 0.0,
                "none": float(missing[name]),
                "small": float((values < self.cfg.warn_norm).sum()),
            }
        return stats

    def events(self, stats: dict[str, dict[str, float]], step: int) -> list[HealthEvent]:
        found = []
        for name, s in stats.items():
            if s["l2"] < self.cfg.warn_norm:
                found.append(
                    HealthEvent(
                        "vanishing_gradient",
                        step,
                        s["l2"],
                        "critical",
                        component=name,
                        message=f"gradient L2 norm {s['l2']:.3g} < {self.cfg.warn_norm:g} "
                        f"({int(s['none'])} tensors without gradient, {int(s['small'])} under the threshold)",
                    )
                )
            elif not math.isfinite(s["l2"]) or s["l2"] > self.cfg.max_norm:
                found.append(
                    HealthEvent(
                        "exploding_gradient",
                        step,
                        s["l2"],
                        "critical",
                        component=name,
                        message=f"gradient L2 norm {s['l2']:.3g} > {self.cfg.max_norm:g}",
                    )
                )
        return found


class ActivationGradients:
    """Gradient norms reaching named activations, from hooks registered once and kept for the whole run."""

    def __init__(self, modules: Mapping[str, nn.Module]) -> None:
        self.latest: dict[str, Tensor] = {}
        self.handles = [module.register_forward_hook(self._hook(name)) for name, module in modules.items()]

    def _hook(self, name: str) -> Callable[[nn.Module, object, Tensor], None]:
        def attach(module: nn.Module, inputs: object, output: Tensor) -> None:
            if output.requires_grad:
                output.register_hook(lambda grad: self._store(name, grad))

        return attach

    def _store(self, name: str, grad: Tensor) -> None:
        self.latest[name] = grad.detach()  # a reference, not a copy; its norm is taken only when read

    def read(self) -> dict[str, float]:
        return {name: float(grad.float().norm()) for name, grad in self.latest.items()}

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def day_std_ratio(point: Tensor, y: Tensor, y_mask: Tensor) -> Tensor:
    """(H,) per-horizon std(pred)/std(target) over the day's labelled stocks (NaN where undefined)."""
    mask = y_mask.float()
    n = mask.sum(0)
    ratios = []
    for k in range(y.shape[1]):
        valid = y_mask[:, k]
        p, t = point[valid, k].float(), y[valid, k].float()
        ratios.append(p.std(unbiased=False) / t.std(unbiased=False) if n[k] >= 3 else point.new_tensor(float("nan")))
    return torch.stack(ratios)


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
        """Fold one day's (H,) std(pred)/std(target) into the EMA (NaN: no reading that day)."""
        if self.ema is None:
            self.ema = ratio.clone()
        else:
            fresh = torch.isnan(self.ema)
            self.ema = torch.where(fresh, ratio, self.cfg.ema * self.ema + (1 - self.cfg.ema) * ratio)
            self.ema = torch.where(torch.isnan(ratio), torch.where(fresh, ratio, self.ema), self.ema)

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


DEAD_INPUT_MIN_DAYS = 20  # training days a feature must stay flat (or ignored) before it is called dead


@dataclass
class SignalMonitor:
    """Rolling training RankIC per horizon and dead inputs, from the training days as they pass."""

    cfg: SignalConfig
    horizons: list[int]
    features: list[str]
    rank_ic: deque[Tensor] = field(init=False)
    gate_sum: Tensor | None = field(default=None, init=False)
    varying: Tensor | None = field(default=None, init=False)
    days: int = field(default=0, init=False)
    silent: set[int] = field(default_factory=set, init=False)
    dead: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.rank_ic = deque(maxlen=self.cfg.window)

    def update(self, rank_ic: Tensor, gates: Tensor, moves: Tensor) -> None:
        """Fold one day's (H,) RankIC, (F,) mean selection weights and (F,) bool "varies" into the window."""
        self.rank_ic.append(rank_ic)
        self.gate_sum = gates if self.gate_sum is None else self.gate_sum + gates
        self.varying = moves if self.varying is None else self.varying | moves
        self.days += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "rank_ic": list(self.rank_ic),
            "gate_sum": self.gate_sum,
            "varying": self.varying,
            "days": self.days,
            "silent": sorted(self.silent),
            "dead": sorted(self.dead),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rank_ic = deque(state["rank_ic"], maxlen=self.cfg.window)
        self.gate_sum, self.varying, self.days = state["gate_sum"], state["varying"], state["days"]
        self.silent, self.dead = set(state["silent"]), set(state["dead"])

    def summary(self) -> dict[str, float]:
        """Rolling mean RankIC per horizon and its t-statistic.

        t = mean / se from :func:`~atft.metrics.inference.mean_inference` at lag ``overlap_lag(h, days)``, the
        evaluation's Newey-West recipe. Days without a RankIC (NaN: too few labelled stocks) are left out.
        The window holds days in the order training served them (shuffled), so neighbours in the window are
        rarely neighbours in time: on noise (shuffled labels) the error is exact, but with real h-day labels
        two days of the window that are less than h days apart share part of their labels, which no lag sees
        (that needs each row's day id), so t runs high by ~sqrt(1 + (window / epoch days) (h - 1) rho), rho
        the mean autocorrelation of the daily RankIC over lags 1..h-1.
        Cost: one host copy of the (window, H) rows, then numpy on <= a few hundred values per horizon
        (~0.3 ms per horizon, mostly scipy's t distribution), at logging steps only.
        """
        if not self.rank_ic:
            return {}
        ics = torch.stack(list(self.rank_ic)).cpu().double().numpy()  # (days, H); .cpu() is the one sync
        out: dict[str, float] = {}
        for k, h in enumerate(self.horizons):
            col = ics[:, k][~np.isnan(ics[:, k])]
            inference = mean_inference(col, horizon=h)
            out |= {f"train_rank_ic_{h}d": inference.mean, f"train_rank_ic_t_{h}d": inference.t}
        return out

    def check(self, step: int) -> list[HealthEvent]:
        """``no_learning_signal`` / ``learning_signal_recovered`` once the window is full after warm-up, and
        ``dead_input`` once enough days were seen to call a feature dead."""
        events = self._dead_inputs(step) if self.days >= DEAD_INPUT_MIN_DAYS else []
        if step < self.cfg.warmup_steps or len(self.rank_ic) < self.cfg.window:
            return events
        summary = self.summary()
        for k, h in enumerate(self.horizons):
            t = summary[f"train_rank_ic_t_{h}d"]
            if not abs(t) >= self.cfg.z and k not in self.silent:
                self.silent.add(k)
                events.append(
                    HealthEvent(
                        "no_learning_signal",
                        step,
                        summary[f"train_rank_ic_{h}d"],
                        "critical",
                        horizon=h,
                        message=f"rolling training RankIC over {len(self.rank_ic)} days is within noise of zero "
                        f"(t = {t:.2f}, |t| < {self.cfg.z})",
                    )
                )
            elif abs(t) >= self.cfg.z and k in self.silent:
                self.silent.discard(k)
                events.append(
                    HealthEvent("learning_signal_recovered", step, summary[f"train_rank_ic_{h}d"], "info", horizon=h)
                )
        return events

    def _dead_inputs(self, step: int) -> list[HealthEvent]:
        if self.gate_sum is None or self.varying is None:
            return []
        events = []
        gates = (self.gate_sum / self.days).tolist()
        for name, gate, varies in zip(self.features, gates, self.varying.tolist(), strict=True):
            if name in self.dead or (varies and gate >= self.cfg.dead_gate):
                continue
            self.dead.add(name)
            why = (
                "no cross-sectional variance on any training day" if not varies else f"mean selection weight {gate:.2g}"
            )
            events.append(HealthEvent("dead_input", step, gate, "critical", feature=name, message=why))
        return events
