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
* :class:`SignalMonitor` -- the per-day training RankIC per horizon: ``weak_learning_signal`` (a warning) when
  the rolling window is not above noise after warm-up, ``no_learning_signal`` (critical) when a whole epoch's
  days are not (healthy gradient norms alone never count as learning); ``dead_input`` for a feature whose
  selection weight or cross-sectional variance is zero.

Everything accumulates on the device; values are read (a sync) only when a check is due.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
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
    """Training RankIC per horizon, judged twice, and dead inputs, from the training days as they pass.

    * Rolling, at logging steps after warm-up: the last ``window`` days. ``weak_learning_signal`` (a warning)
      when their mean RankIC is not above noise, ``learning_signal_recovered`` (info) when it is again. A
      window of a few hundred days has little power: a healthy run on real prices sits at t ~ 1-2 for its
      first several hundred steps, so this only warns.
    * Per epoch, at its end (:meth:`end_epoch`): every training day of the epoch. ``no_learning_signal`` (critical)
      when their mean RankIC is not above noise, ``learning_signal_confirmed`` (info) when a horizon that
      failed an earlier epoch passes. Many more days give the test power: with per-day std s and an h-day
      overlap, t ~ mean / s * sqrt(days / h), so a mean RankIC of 0.02 at s = 0.1 passes over 1,000 days at
      1d and 5d (t ~ 6, ~ 2.8; at 20d, t ~ 1.4, it takes ~2,000 days or a stronger signal), while on noise t
      stays a standard draw (one in 44 passes z = 2).

    Both use one test: one-sided t = mean / se >= ``z`` (a model that ranks its training days backwards is not
    learning), se from :func:`~atft.metrics.inference.mean_inference` at the horizon's overlap lag, over the
    days sorted into calendar order (see :meth:`summary`). Days without a RankIC (NaN) are left out.
    """

    cfg: SignalConfig
    horizons: list[int]
    features: list[str]
    rank_ic: deque[Tensor] = field(init=False)
    calendar: deque[Tensor] = field(init=False)  # each window row's calendar day index
    epoch_rank_ic: list[Tensor] = field(default_factory=list, init=False)  # every day of the epoch so far
    epoch_calendar: list[Tensor] = field(default_factory=list, init=False)
    gate_sum: Tensor | None = field(default=None, init=False)
    varying: Tensor | None = field(default=None, init=False)
    days: int = field(default=0, init=False)
    weak: set[int] = field(default_factory=set, init=False)  # horizons whose rolling check last failed
    missing: set[int] = field(default_factory=set, init=False)  # horizons whose last epoch verdict failed
    dead: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.rank_ic = deque(maxlen=self.cfg.window)
        self.calendar = deque(maxlen=self.cfg.window)

    def update(self, rank_ic: Tensor, gates: Tensor, moves: Tensor, day: Tensor) -> None:
        """Fold one day's (H,) RankIC, (F,) mean selection weights, (F,) bool "varies" and its calendar day
        (a () tensor) into the window and the epoch's days; all stay on the device (no sync)."""
        self.rank_ic.append(rank_ic)
        self.calendar.append(day)
        self.epoch_rank_ic.append(rank_ic)
        self.epoch_calendar.append(day)
        self.gate_sum = gates if self.gate_sum is None else self.gate_sum + gates
        self.varying = moves if self.varying is None else self.varying | moves
        self.days += 1

    def state_dict(self) -> dict[str, Any]:
        """Everything the checks depend on, the epoch's days included: a run resumed mid-epoch decides alike."""
        return {
            "rank_ic": list(self.rank_ic),
            "calendar": list(self.calendar),
            "epoch_rank_ic": list(self.epoch_rank_ic),
            "epoch_calendar": list(self.epoch_calendar),
            "gate_sum": self.gate_sum,
            "varying": self.varying,
            "days": self.days,
            "weak": sorted(self.weak),
            "missing": sorted(self.missing),
            "dead": sorted(self.dead),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rank_ic = deque(state["rank_ic"], maxlen=self.cfg.window)
        self.calendar = deque(state["calendar"], maxlen=self.cfg.window)
        self.epoch_rank_ic, self.epoch_calendar = list(state["epoch_rank_ic"]), list(state["epoch_calendar"])
        self.gate_sum, self.varying, self.days = state["gate_sum"], state["varying"], state["days"]
        self.weak, self.missing, self.dead = set(state["weak"]), set(state["missing"]), set(state["dead"])

    def summary(self) -> dict[str, float]:
        """Rolling mean RankIC per horizon and its t-statistic.

        t = mean / se from :func:`~atft.metrics.inference.mean_inference` at lag ``overlap_lag(h, days)``, the
        evaluation's Newey-West recipe, over the window's days in calendar order: training serves days
        shuffled, but two days less than h days apart share part of their h-day labels, and only in calendar
        order does the lag see that (in served order t ran high by up to sqrt(1 + 2 sum of the autocorrelations),
        about 1.6x at 5d). A day served in two epochs sits beside itself. Days without a RankIC (NaN: too few
        labelled stocks) are left out.
        Cost: one host copy of the (window, H + 1) rows -- the one sync --, a sort, then numpy on <= a few
        hundred values per horizon (~0.3 ms per horizon, mostly scipy's t distribution), at logging steps only.
        """
        if not self.rank_ic:
            return {}
        out: dict[str, float] = {}
        for h, col in zip(self.horizons, _calendar_columns(self.rank_ic, self.calendar), strict=True):
            inference = mean_inference(col, horizon=h)
            out |= {f"train_rank_ic_{h}d": inference.mean, f"train_rank_ic_t_{h}d": inference.t}
        return out

    def check(self, step: int) -> list[HealthEvent]:
        """``weak_learning_signal`` / ``learning_signal_recovered`` once the window is full after warm-up, and
        ``dead_input`` once enough days were seen to call a feature dead."""
        events = self._dead_inputs(step) if self.days >= DEAD_INPUT_MIN_DAYS else []
        if step < self.cfg.warmup_steps or len(self.rank_ic) < self.cfg.window:
            return events
        summary = self.summary()
        for k, h in enumerate(self.horizons):
            mean, t = summary[f"train_rank_ic_{h}d"], summary[f"train_rank_ic_t_{h}d"]
            learning = t >= self.cfg.z  # one-sided; NaN (a constant window) is no signal
            if not learning and k not in self.weak:
                self.weak.add(k)
                message = (
                    f"rolling training RankIC over {len(self.rank_ic)} days is not above noise "
                    f"(t = {t:.2f} < z = {self.cfg.z}, overlap-correct, days in calendar order)"
                )
                events.append(HealthEvent("weak_learning_signal", step, mean, "warning", horizon=h, message=message))
            elif learning and k in self.weak:
                self.weak.discard(k)
                events.append(HealthEvent("learning_signal_recovered", step, mean, "info", horizon=h))
        return events

    def end_epoch(self, step: int) -> tuple[list[HealthEvent], dict[str, float]]:
        """The epoch's verdict over all its training days, and its statistics for the ``epoch`` record.

        Per horizon with at least ``window`` days of a finite RankIC in the epoch: ``epoch_train_rank_ic_{h}d``
        and ``epoch_train_rank_ic_t_{h}d`` (the test of the class docstring over the epoch's days in calendar
        order); ``no_learning_signal`` (critical) when t < z, ``learning_signal_confirmed`` (info) when t >= z
        at a horizon whose previous verdict failed. A horizon with fewer days gets no verdict and no
        statistics: too few days to tell a weak signal from noise (the rolling check still warns). The next
        epoch starts with no days. Cost: one host copy of the epoch's (days, H + 1) rows, once per epoch.
        """
        if not self.epoch_rank_ic:
            return [], {}
        columns = _calendar_columns(self.epoch_rank_ic, self.epoch_calendar)
        self.epoch_rank_ic, self.epoch_calendar = [], []
        events: list[HealthEvent] = []
        stats: dict[str, float] = {}
        for k, (h, col) in enumerate(zip(self.horizons, columns, strict=True)):
            if len(col) < self.cfg.window:
                continue
            inference = mean_inference(col, horizon=h)
            mean, t = inference.mean, inference.t
            stats |= {f"epoch_train_rank_ic_{h}d": mean, f"epoch_train_rank_ic_t_{h}d": t}
            if not t >= self.cfg.z:
                self.missing.add(k)
                message = (
                    f"training RankIC over the epoch's {len(col)} days is not above noise "
                    f"(t = {t:.2f} < z = {self.cfg.z}, overlap-correct, days in calendar order)"
                )
                events.append(HealthEvent("no_learning_signal", step, mean, "critical", horizon=h, message=message))
            elif k in self.missing:
                self.missing.discard(k)
                message = f"training RankIC over the epoch's {len(col)} days is above noise (t = {t:.2f})"
                events.append(HealthEvent("learning_signal_confirmed", step, mean, "info", horizon=h, message=message))
        return events, stats

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


def _calendar_columns(rank_ic: Sequence[Tensor], calendar: Sequence[Tensor]) -> list[np.ndarray]:
    """Per horizon, the days' finite RankICs (float64) in calendar order (stable: a day's chunks keep their order).

    The one host copy of a check: (days, H + 1) rows, each RankIC with its calendar day, then a sort.
    """
    rows = torch.cat([torch.stack(list(rank_ic)), torch.stack(list(calendar))[:, None]], 1).cpu()  # a sync
    ics = rows[torch.argsort(rows[:, -1], stable=True), :-1].double().numpy()  # (days, H) in calendar order
    return [col[~np.isnan(col)] for col in ics.T]
