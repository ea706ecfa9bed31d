r"""The trivial baselines: momentum, reversal and a ridge regression on the model's own inputs.

* momentum: the trailing 20-day return, :math:`\prod_{k=0}^{19}(1 + r_{t-k}) - 1`;
* reversal: minus the trailing 5-day return (short-term reversal);
* ridge: a ridge regression per horizon on the same per-stock features at the last lookback step,
  fitted on the training days only (closed form, :math:`\beta = (X^\top X + \lambda n I)^{-1} X^\top y`,
  features and targets as the model sees them: missing features are 0 with a mask column).

They cost nothing and take no tuning, so a model that cannot beat them has not earned its depth.
"""

from __future__ import annotations

import torch
from torch import Tensor

from atft.data.panel import DensePanel

RIDGE_LAMBDA = 1.0
"""Penalty per row: the Gram matrix gets ``lambda * n``, so a unit-variance feature's coefficient is shrunk to
about half its least-squares value, a strong pull that suits a weak signal in noisy returns."""
MOMENTUM_DAYS, REVERSAL_DAYS = 20, 5


def trailing_return(panel: DensePanel, days: Tensor, stocks: Tensor, window: int) -> Tensor:
    """Compounded return over the ``window`` days ending at each row's day (NaN if any is missing)."""
    offsets = torch.arange(-window + 1, 1)
    rows = (days[:, None] + offsets).clamp(min=0)  # (R, window)
    r = panel.returns[rows, stocks[:, None]].double()  # (R, window)
    out = torch.log1p(r).sum(1).expm1().float()
    out[days < window - 1] = float("nan")
    return out


def momentum(panel: DensePanel, days: Tensor, stocks: Tensor) -> Tensor:
    """(R, H): the trailing 20-day return, the same forecast for every horizon."""
    signal = trailing_return(panel, days, stocks, MOMENTUM_DAYS)
    return signal[:, None].expand(-1, len(panel.horizons)).contiguous()


def reversal(panel: DensePanel, days: Tensor, stocks: Tensor) -> Tensor:
    """(R, H): minus the trailing 5-day return, the same forecast for every horizon."""
    signal = -trailing_return(panel, days, stocks, REVERSAL_DAYS)
    return signal[:, None].expand(-1, len(panel.horizons)).contiguous()


def _design(panel: DensePanel, days: Tensor, stocks: Tensor) -> Tensor:
    x = panel.features[days, stocks].double()  # (R, F)
    observed = torch.isfinite(x)
    return torch.cat([torch.where(observed, x, 0.0), observed.double(), torch.ones(len(x), 1, dtype=x.dtype)], 1)


def fit_ridge(panel: DensePanel, days: Tensor, stocks: Tensor, penalty: float = RIDGE_LAMBDA) -> Tensor:
    """Coefficients (2F + 1, H) fitted on the training rows, one column per horizon; unlabelled rows skipped."""
    x = _design(panel, days, stocks)  # (R, 2F + 1)
    y = panel.targets[days, stocks].double()  # (R, H)
    betas = []
    for k in range(y.shape[1]):
        ok = torch.isfinite(y[:, k])
        xk, yk = (x, y[:, k]) if bool(ok.all()) else (x[ok], y[ok, k])  # no copy of the design when all are labelled
        gram = xk.T @ xk + penalty * len(xk) * torch.eye(xk.shape[1], dtype=xk.dtype)
        betas.append(torch.linalg.solve(gram, xk.T @ yk))
    return torch.stack(betas, 1)


def ridge(panel: DensePanel, days: Tensor, stocks: Tensor, beta: Tensor) -> Tensor:
    """(R, H) forecasts of the ridge with coefficients ``beta`` (:func:`fit_ridge`)."""
    return (_design(panel, days, stocks) @ beta).float()
