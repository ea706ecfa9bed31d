"""The data contract: what a panel must satisfy before any model sees it.

Structural rules (columns, dtypes, sorted unique keys, market context constant per date) are enforced
while loading (``atft.data.panel``). This module checks what only the whole panel shows, each rule aimed
at a failure that has ruined a real run:

* non-finite values: an Inf in a feature, target or return (NaN means "missing" and is allowed);
* dead inputs: a feature whose per-date cross-sectional std is zero on most dates (a "cross-sectional"
  z-score computed per stock does exactly this);
* leaks: a feature whose mean daily IC with a forward target is far beyond anything past data achieves;
* filled labels: forward returns of exactly 0 where a price was missing;
* thin days: too many days with fewer stocks than the cross-sectional model needs, and any day with a single
  stock (per-date z-scores are undefined there, so such a day is a stray row, not a market);
* missing inputs: a feature that is mostly NaN.

Beside the violations, ``notes`` name what a real panel holds and the pipeline survives (daily moves beyond
+-50%, gaps in a stock's rows, thin days): :mod:`atft.data.anomalies`.

Statistics are computed in chunks of days with vectorised torch ops, so the check costs seconds at
3,800 stocks x 1,250 days and little memory beyond the panel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from atft.config import Config
from atft.data.anomalies import price_anomalies
from atft.data.panel import DensePanel
from atft.errors import DataContractError

_CHUNK_DAYS = 32
_ZERO_STD = 1e-8


@dataclass
class ContractReport:
    """What the contract measured, per feature and horizon, and the problems found (empty = pass)."""

    n_days: int
    n_stocks: int
    n_rows: int
    dead_date_fraction: dict[str, float] = field(default_factory=dict)
    missing_fraction: dict[str, float] = field(default_factory=dict)
    mean_ic: dict[str, dict[int, float]] = field(default_factory=dict)
    zero_label_fraction: dict[int, float] = field(default_factory=dict)
    thin_days: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # anomalies survived, not violations (atft.data.anomalies)

    def raise_if_failed(self, source: str) -> None:
        if self.problems:
            raise DataContractError(self.problems, source=source)


def _first_key(panel: DensePanel, bad: torch.Tensor) -> str:
    """'(date, code)' of the first True cell of a [D, N, ...] mask."""
    day, stock = (int(i) for i in bad.reshape(bad.shape[0], bad.shape[1], -1).any(-1).nonzero()[0])
    return f"({panel.dates[day]}, {panel.codes[stock]})"


def _check_finite(panel: DensePanel, report: ContractReport) -> None:
    named = [
        ("feat_", panel.feature_names, panel.features),
        ("target_", [f"{h}d" for h in panel.horizons], panel.targets),
    ]
    for prefix, names, values in named:
        infinite = torch.isinf(values)
        for j in infinite.reshape(-1, len(names)).any(0).nonzero().flatten().tolist():
            count = int(infinite[..., j].sum())
            key = _first_key(panel, infinite[..., j])
            report.problems.append(f"column '{prefix}{names[j]}': {count} infinite value(s), first at {key}")
    if bool(torch.isinf(panel.returns).any()):
        first = _first_key(panel, torch.isinf(panel.returns))
        report.problems.append(f"column 'return_1d': infinite values, first at {first}")
    for j in torch.isinf(panel.market).any(0).nonzero().flatten().tolist():
        report.problems.append(f"column 'mkt_{panel.market_feature_names[j]}': infinite values")


def _day_stats(panel: DensePanel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per day and feature: cross-sectional std [D, F], finite count [D, F]; mean IC sums [F, H] and days [F, H]."""
    n_days, n_feat, n_h = panel.n_days, len(panel.feature_names), len(panel.horizons)
    std = torch.zeros(n_days, n_feat, dtype=torch.float64)
    count = torch.zeros(n_days, n_feat, dtype=torch.float64)
    ic_sum = torch.zeros(n_feat, n_h, dtype=torch.float64)
    ic_days = torch.zeros(n_feat, n_h, dtype=torch.float64)
    for start in range(0, n_days, _CHUNK_DAYS):
        x = panel.features[start : start + _CHUNK_DAYS].double()  # (d, N, F)
        y = panel.targets[start : start + _CHUNK_DAYS].double()  # (d, N, H)
        vx, vy = torch.isfinite(x), torch.isfinite(y)
        x0, y0 = torch.where(vx, x, 0.0), torch.where(vy, y, 0.0)
        n = vx.sum(1).double()  # (d, F)
        mean = x0.sum(1) / n.clamp(min=1)
        var = (torch.where(vx, x - mean[:, None, :], 0.0) ** 2).sum(1) / n.clamp(min=1)
        std[start : start + len(x)] = var.sqrt()
        count[start : start + len(x)] = n
        _accumulate_ic(x0, vx.double(), y0, vy.double(), ic_sum, ic_days)
    return std, count, ic_sum / ic_days.clamp(min=1)


def _accumulate_ic(
    x0: torch.Tensor, vx: torch.Tensor, y0: torch.Tensor, vy: torch.Tensor, ic_sum: torch.Tensor, ic_days: torch.Tensor
) -> None:
    """Add each day's Pearson IC between every feature and every target over their joint finite cells.

    A screening statistic for the leak check, batched over all (feature, target) pairs at once; the metric
    IC of a forecast is ``atft.metrics.finance.daily_ic`` (a test checks the two agree).
    """
    n = torch.einsum("dnf,dnh->dfh", vx, vy)
    sx, sy = torch.einsum("dnf,dnh->dfh", x0, vy), torch.einsum("dnf,dnh->dfh", vx, y0)
    sxy = torch.einsum("dnf,dnh->dfh", x0, y0)
    sxx, syy = torch.einsum("dnf,dnh->dfh", x0**2, vy), torch.einsum("dnf,dnh->dfh", vx, y0**2)
    cov = sxy - sx * sy / n.clamp(min=1)
    var_x, var_y = sxx - sx**2 / n.clamp(min=1), syy - sy**2 / n.clamp(min=1)
    ok = (n >= 3) & (var_x > _ZERO_STD) & (var_y > _ZERO_STD)
    ic = torch.where(ok, cov / (var_x * var_y).clamp(min=1e-300).sqrt(), 0.0)
    ic_sum += ic.sum(0)
    ic_days += ok.double().sum(0)


def _check_features(panel: DensePanel, cfg: Config, report: ContractReport) -> None:
    std, count, mean_ic = _day_stats(panel)
    rows = panel.present.sum().clamp(min=1)
    scored_days = (count >= 2).sum(0).clamp(min=1)
    for j, name in enumerate(panel.feature_names):
        dead = float(((std[:, j] <= _ZERO_STD) & (count[:, j] >= 2)).sum() / scored_days[j])
        missing = float(1.0 - count[:, j].sum() / rows)
        report.dead_date_fraction[name] = dead
        report.missing_fraction[name] = missing
        report.mean_ic[name] = {h: float(mean_ic[j, k]) for k, h in enumerate(panel.horizons)}
        if dead > cfg.contract.max_dead_date_fraction:
            report.problems.append(
                f"column 'feat_{name}' is dead: cross-sectional std is 0 on {dead:.0%} of dates (allowed <= "
                f"{cfg.contract.max_dead_date_fraction:.0%}); was it z-scored per stock instead of per date?"
            )
        if missing > cfg.contract.max_missing_feature_fraction:
            report.problems.append(
                f"column 'feat_{name}' is {missing:.0%} missing "
                f"(allowed <= {cfg.contract.max_missing_feature_fraction:.0%})"
            )
        for h, ic in report.mean_ic[name].items():
            if abs(ic) > cfg.contract.leak_abs_ic:
                report.problems.append(
                    f"column 'feat_{name}' leaks the future: mean daily IC with target_{h}d is {ic:+.3f} "
                    f"(|IC| allowed <= {cfg.contract.leak_abs_ic}); does it use prices after its date?"
                )


def _check_labels(panel: DensePanel, cfg: Config, report: ContractReport) -> None:
    for k, h in enumerate(panel.horizons):
        y = panel.targets[..., k]
        valid = torch.isfinite(y)
        n_valid = int(valid.sum())
        if n_valid == 0:
            report.problems.append(f"column 'target_{h}d' has no labels at all")
            continue
        zero = (y == 0) & valid
        fraction = float(zero.sum()) / n_valid
        report.zero_label_fraction[h] = fraction
        tail = y[-h:]
        tail_valid = int(torch.isfinite(tail).sum())
        tail_zero = int((tail == 0).sum())
        if fraction > cfg.contract.max_zero_label_fraction:
            report.problems.append(
                f"column 'target_{h}d': {fraction:.1%} of labels are exactly 0 (allowed <= "
                f"{cfg.contract.max_zero_label_fraction:.0%}), first at {_first_key(panel, zero)}; "
                "missing labels must be NaN, not 0"
            )
        elif tail_valid and tail_zero > tail_valid // 2:
            report.problems.append(
                f"column 'target_{h}d': {tail_zero} of {tail_valid} labels on the last {h} dates are exactly 0, where "
                "no later price exists; missing labels must be NaN, not 0"
            )


def _check_days(panel: DensePanel, cfg: Config, report: ContractReport) -> None:
    per_day = panel.present.sum(1)
    lone = (per_day < 2).nonzero().flatten().tolist()
    if lone:  # a z-score across one stock is undefined: a builder never writes such a day, a stray row does
        day = lone[0]
        code = panel.codes[int(panel.present[day].nonzero()[0, 0])]
        report.problems.append(
            f"{len(lone)} date(s) with a single stock, first {panel.dates[day]} ({code}); a cross-section needs "
            "at least 2 stocks: a row with a wrong date?"
        )
    thin = per_day < cfg.data.min_stocks_per_day
    report.thin_days = int(thin.sum())
    fraction = report.thin_days / max(panel.n_days, 1)
    if fraction > cfg.contract.max_thin_day_fraction:
        report.problems.append(
            f"too few stocks per day: {report.thin_days} of {panel.n_days} days ({fraction:.0%}) have fewer than "
            f"data.min_stocks_per_day={cfg.data.min_stocks_per_day} stocks (median {int(per_day.median())}); "
            f"allowed <= {cfg.contract.max_thin_day_fraction:.0%}"
        )


def check_panel(panel: DensePanel, cfg: Config) -> ContractReport:
    """Measure every contract rule on ``panel``; ``report.problems`` lists each violation."""
    report = ContractReport(panel.n_days, panel.n_stocks, int(panel.present.sum()))
    _check_finite(panel, report)
    _check_days(panel, cfg, report)
    _check_features(panel, cfg, report)
    _check_labels(panel, cfg, report)
    present = panel.present.numpy()
    returns = torch.where(panel.present, panel.returns, torch.nan).numpy()
    codes = [str(c) for c in panel.codes]
    report.notes = price_anomalies(
        returns, present, None, panel.dates, codes, cfg.data.min_stocks_per_day, cfg.features.clip
    )
    return report
