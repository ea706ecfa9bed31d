"""The synthetic market's oracle for one fold, its only fitted part fitted on that fold's training days.

The oracle is the best forecast from what the table shows, with the generator's structure and parameters known
(:mod:`atft.data.synth`). All of it is analytic except two coefficients (b1, b2): how the news of a stock's
hidden cluster shows in its cluster's returns (z) and in the rest of its sector's (zbar). The generator does
not know the fold, so it writes the oracle in parts, and this module assembles each fold's, per horizon h::

    oracle_h = oracle_own_<h>d + b1 * oracle_lead_lag_z_<h>d + b2 * oracle_lead_lag_zbar_<h>d

with (b1, b2) the least-squares fit (no intercept) of ``oracle_fit_news`` on (``oracle_fit_z``,
``oracle_fit_zbar``) over the fold's training rows (as the generator's own fit, but over the rows of listed
stocks instead of (day, cluster) cells; the coefficients agree within 5%). The fit is on the news, not on the
realised returns: the coefficients stand for what a forecaster that knew the parameters would compute, which
the news pins down (it is most of z's variance) while a return is 99% noise to the whole oracle. On the demo
fold a fit to the returns moved the oracle's RankIC by up to 0.006; on a small panel it would make the bar a
run is graded against a noisy estimate of itself. One fit serves every horizon, as the generator's does. On
the demo fold the fold's oracle scores within 0.0011 of one fitted on every day (benchmarks/bench_baselines.py).

A panel that holds ``oracle_<h>d`` itself (a forecast with nothing fitted) has it used as is
(:class:`atft.baselines.Baselines`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from atft.data.panel import DensePanel
from atft.data.synth import ORACLE_FIT_COLUMNS, oracle_part_columns
from atft.errors import DataContractError


@dataclass(frozen=True)
class _Columns:
    """The panel's ``oracle_inputs`` and the positions in it of the own part (H,), the lead-lag components
    (H, 2) and the fit data (3,)."""

    inputs: Tensor
    own: list[int]
    lead_lag: list[list[int]]
    fit: list[int]


def _columns(panel: DensePanel) -> _Columns | None:
    """Where the oracle's parts are, or None when the panel has none of them."""
    names = panel.oracle_input_names
    wanted = [*ORACLE_FIT_COLUMNS, *(c for h in panel.horizons for c in oracle_part_columns(h))]
    missing = [c for c in wanted if c not in names]
    if len(missing) == len(wanted) or panel.oracle_inputs is None:
        return None
    if missing:
        raise DataContractError(
            [f"the synthetic oracle needs columns {', '.join(missing)} (horizons {panel.horizons}); the panel has "
             f"only {', '.join(names)}: regenerate it with atft data synth"],
            panel.source,
        )  # fmt: skip
    parts = [[names.index(c) for c in oracle_part_columns(h)] for h in panel.horizons]
    fit = [names.index(c) for c in ORACLE_FIT_COLUMNS]
    return _Columns(panel.oracle_inputs, [p[0] for p in parts], [p[1:] for p in parts], fit)


def check_oracle_columns(panel: DensePanel) -> None:
    """Raise :class:`DataContractError` now, before training, if the panel has some of the oracle's parts only."""
    _columns(panel)


@dataclass(frozen=True)
class FoldOracle:
    """The oracle of one fold: the lead-lag coefficients (b1, b2) and how many training rows fitted them."""

    coef: tuple[float, float]
    rows: int

    def forecast(self, panel: DensePanel, days: Tensor, stocks: Tensor) -> Tensor:
        """(R, H) float32 forecasts for the rows (days, stocks) of the panel the oracle was fitted on."""
        columns = _columns(panel)
        if columns is None:
            raise ValueError(f"{panel.source}: no oracle parts (oracle_* columns) to forecast with")
        inputs = columns.inputs[days, stocks].double()  # (R, K)
        own = inputs[:, columns.own]  # (R, H)
        lead_lag = inputs[:, columns.lead_lag]  # (R, H, 2)
        return (own + lead_lag @ torch.tensor(self.coef, dtype=torch.float64)).float()


def fit_oracle(panel: DensePanel, days: Tensor, stocks: Tensor) -> FoldOracle | None:
    """The fold's oracle from its training rows (days, stocks); None for a panel without the oracle's parts.

    Raises:
        DataContractError: some of the oracle's columns are missing, or the training rows cannot fit (b1, b2).
    """
    columns = _columns(panel)
    if columns is None:
        return None
    data = columns.inputs[days, stocks][:, columns.fit].double()  # (R, 3)
    data = data[torch.isfinite(data).all(1)]
    news, z, zbar = data.unbind(1)
    # the 2x2 normal equations by plain sums: LAPACK's least squares differed in the last digit between calls
    zz, zzbar, zbarzbar, zn, zbarn = (
        float((a * b).sum()) for a, b in ((z, z), (z, zbar), (zbar, zbar), (z, news), (zbar, news))
    )
    det = zz * zbarzbar - zzbar * zzbar
    if not det > 1e-12 * zz * zbarzbar:
        raise DataContractError(
            [f"{len(data)} training rows with {', '.join(ORACLE_FIT_COLUMNS)}: too few (or too alike) to fit the "
             "oracle's two lead-lag coefficients"],
            panel.source,
        )  # fmt: skip
    coef = ((zbarzbar * zn - zzbar * zbarn) / det, (zz * zbarn - zzbar * zn) / det)
    return FoldOracle(coef=coef, rows=len(data))
