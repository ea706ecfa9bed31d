"""The learning signal: is the model ranking its training days better than noise, and does every input count?

:class:`SignalMonitor` judges the per-day training RankIC per horizon twice (a rolling warning and a per-epoch
verdict, the class docstring says how and why) and finds dead inputs (no cross-sectional variance, or a
selection weight of zero). The per-day RankIC is :func:`atft.metrics.ranks.day_rank_ic`, the torch twin of
the evaluation's :func:`atft.metrics.finance.daily_rank_ic` (average ranks for ties, tested against it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from atft.config import SignalConfig
from atft.health.events import DEAD_INPUT_MIN_DAYS, HealthEvent
from atft.metrics.inference import mean_inference


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
    * Power: a horizon whose epoch holds fewer than ``min_periods`` independent periods (days / h) cannot tell
      such a signal from noise (at mean / s = 0.2 its expected t is under z = 2), so its failure alone is
      ``learning_signal_unconfirmed`` (a warning), and critical only when a horizon with the power fails in the
      same epoch. On the S&P 500 panel a healthy run's first epoch over 828 days (41 periods at 20d) gave
      t = 1.43 at 20d while 1d and 5d passed; with labels shuffled every horizon fails, 1d and 5d with power, so
      the drill stays critical at every horizon. At 1d the periods are the days, so with ``min_periods`` <=
      ``window`` a 1d horizon always has the power.

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
        order). Where t < z: ``no_learning_signal`` (critical) at a horizon with ``min_periods`` independent
        periods, or at any failing horizon when one with them fails too; else ``learning_signal_unconfirmed``
        (a warning: too little power to call it alone). ``learning_signal_confirmed`` (info) when t >= z at a
        horizon whose previous verdict failed either way. A horizon with fewer than ``window`` days gets no
        verdict and no statistics: too few days to tell a weak signal from noise (the rolling check still
        warns). The next epoch starts with no days. Cost: one host copy of the epoch's (days, H + 1) rows, once
        per epoch.
        """
        if not self.epoch_rank_ic:
            return [], {}
        columns = _calendar_columns(self.epoch_rank_ic, self.epoch_calendar)
        self.epoch_rank_ic, self.epoch_calendar = [], []
        stats: dict[str, float] = {}
        judged = []  # (index, horizon, days, mean, t) of each horizon with a verdict
        for k, (h, col) in enumerate(zip(self.horizons, columns, strict=True)):
            if len(col) < self.cfg.window:
                continue
            inference = mean_inference(col, horizon=h)
            judged.append((k, h, len(col), inference.mean, inference.t))
            stats |= {f"epoch_train_rank_ic_{h}d": inference.mean, f"epoch_train_rank_ic_t_{h}d": inference.t}
        powered = {k for k, h, days, _, _ in judged if days / h >= self.cfg.min_periods}
        failed = {k for k, _, _, _, t in judged if not t >= self.cfg.z}
        passing = ", ".join(f"{h}d" for k, h, *_ in judged if k in powered - failed) or "none"
        events: list[HealthEvent] = []
        for k, h, days, mean, t in judged:
            if k in failed:
                self.missing.add(k)
                message = (
                    f"training RankIC over the epoch's {days} days is not above noise "
                    f"(t = {t:.2f} < z = {self.cfg.z}, overlap-correct, days in calendar order)"
                )
                if k in powered or failed & powered:
                    events.append(HealthEvent("no_learning_signal", step, mean, "critical", horizon=h, message=message))
                    continue
                message += (
                    f"; they hold {days / h:.0f} independent {h}-day periods, under health.signal.min_periods = "
                    f"{self.cfg.min_periods}: too few to call it alone, and the horizons with enough pass ({passing})"
                )
                events.append(HealthEvent("learning_signal_unconfirmed", step, mean, horizon=h, message=message))
            elif k in self.missing:
                self.missing.discard(k)
                message = f"training RankIC over the epoch's {days} days is above noise (t = {t:.2f})"
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
