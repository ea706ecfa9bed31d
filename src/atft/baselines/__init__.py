"""Baselines scored beside the model on the same days, so a run shows at once whether depth pays.

* ``momentum``, ``reversal``, ``ridge`` (:mod:`atft.baselines.simple`): trivial signals and a linear fit on
  the model's inputs;
* ``lightgbm`` (:mod:`atft.baselines.trees`): gradient-boosted trees on the same inputs, the strongest simple
  competitor, early-stopped on the validation days;
* ``oracle`` (synthetic panels): the best forecast from observables, its coefficients fitted on the fold's
  training days (:mod:`atft.baselines.oracle`), or the panel's own ``oracle_<h>d`` where it gives one.

Everything fitted is fitted on the fold's training rows (the lightgbm baseline also watches the validation
rows to stop); test rows are only ever forecast. Every baseline gives one forecast per (row, horizon).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from atft.baselines.oracle import FoldOracle, check_oracle_columns, fit_oracle
from atft.baselines.simple import RIDGE_LAMBDA, fit_ridge, momentum, reversal, ridge, trailing_return
from atft.baselines.trees import TreeFit, TreeParams, fit_trees
from atft.data.panel import DensePanel

__all__ = [
    "BaselineParams",
    "Baselines",
    "FoldOracle",
    "TreeParams",
    "check_oracle_columns",
    "fit_ridge",
    "fold_rows",
    "trailing_return",
]


@dataclass(frozen=True)
class BaselineParams:
    """What the fitted baselines are fitted with; ``lightgbm=None`` leaves the lightgbm baseline out."""

    ridge_lambda: float = RIDGE_LAMBDA
    lightgbm: TreeParams | None = field(default_factory=TreeParams)


def fold_rows(eligible: Tensor, days: range, lookback: int) -> tuple[Tensor, Tensor]:
    """(days, stocks) of the eligible rows (``eligible`` [D, N] bool) on ``days`` with a full lookback window."""
    usable = torch.tensor([d for d in days if d >= lookback - 1], dtype=torch.int64)
    hit = eligible[usable].nonzero()  # (R, 2)
    return usable[hit[:, 0]], hit[:, 1]


@dataclass(frozen=True, eq=False)
class Baselines:
    """The baselines of one fold, fitted; :meth:`forecast` gives their forecasts for any rows of the panel."""

    panel: DensePanel
    ridge_beta: Tensor
    lightgbm: TreeFit | None
    oracle: FoldOracle | None

    @classmethod
    def fit(
        cls,
        panel: DensePanel,
        train_days: Tensor,
        train_stocks: Tensor,
        val_days: Tensor,
        val_stocks: Tensor,
        params: BaselineParams | None = None,
    ) -> Baselines:
        """Fit the ridge, the lightgbm baseline and the oracle on the training rows (days, stocks); the
        validation rows only stop the lightgbm fit.

        Raises:
            DataContractError: the rows cannot fit a baseline (each message says which and why).
        """
        params = params or BaselineParams()
        train = (train_days, train_stocks)
        trees = None if params.lightgbm is None else fit_trees(panel, train, (val_days, val_stocks), params.lightgbm)
        return cls(
            panel=panel,
            ridge_beta=fit_ridge(panel, *train, penalty=params.ridge_lambda),
            lightgbm=trees,
            oracle=fit_oracle(panel, *train),
        )

    def forecast(self, days: Tensor, stocks: Tensor) -> dict[str, Tensor]:
        """{source: (R, H) float32 forecasts} for the rows (days, stocks)."""
        p = self.panel
        out = {
            "momentum": momentum(p, days, stocks),
            "reversal": reversal(p, days, stocks),
            "ridge": ridge(p, days, stocks, self.ridge_beta),
        }
        if self.lightgbm is not None:
            out["lightgbm"] = self.lightgbm.predict(p, days, stocks)
        if self.oracle is not None:
            out["oracle"] = self.oracle.forecast(p, days, stocks)
        elif p.oracle is not None:
            out["oracle"] = p.oracle[days, stocks]
        return out

    def summary(self) -> dict[str, float]:
        """What the fits used and cost, for the run's metrics: rows, rounds per horizon, seconds, coefficients."""
        out: dict[str, float] = {}
        if (trees := self.lightgbm) is not None:
            out |= {
                "lightgbm_train_rows": trees.train_rows,
                "lightgbm_available_rows": trees.available_rows,
                "lightgbm_fit_s": trees.seconds,
            }
            out |= {f"lightgbm_rounds_{h}d": r for h, r in zip(self.panel.horizons, trees.best_rounds, strict=True)}
        if self.oracle is not None:
            out |= {"oracle_b1": self.oracle.coef[0], "oracle_b2": self.oracle.coef[1], "oracle_rows": self.oracle.rows}
        return out
