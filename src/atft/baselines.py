r"""Trivial signals scored beside the model on the same days, so a run shows at once whether depth pays.

* momentum: the trailing 20-day return, :math:`\prod_{k=0}^{19}(1 + r_{t-k}) - 1`;
* reversal: minus the trailing 5-day return (short-term reversal);
* ridge: a ridge regression per horizon on the same per-stock features at the last lookback step,
  fitted on the training days only (closed form, :math:`\beta = (X^\top X + \lambda n I)^{-1} X^\top y`,
  features and targets as the model sees them: missing features are 0 with a mask column);
* oracle (synthetic panels only): the generator's best forecast from observables (``atft.data.synth``).

Every baseline gives one forecast per (day, stock, horizon) for the rows the model is scored on.
"""

from __future__ import annotations

import torch
from torch import Tensor

from atft.data.panel import DensePanel

RIDGE_LAMBDA = 1.0


def trailing_return(panel: DensePanel, days: Tensor, stocks: Tensor, window: int) -> Tensor:
    """Compounded return over the ``window`` days ending at each row's day (NaN if any is missing)."""
    offsets = torch.arange(-window + 1, 1)
    rows = (days[:, None] + offsets).clamp(min=0)  # (R, window)
    r = panel.returns[rows, stocks[:, None]].double()  # (R, window)
    out = torch.log1p(r).sum(1).expm1().float()
    out[days < window - 1] = float("nan")
    return out


def _design(panel: DensePanel, days: Tensor, stocks: Tensor) -> Tensor:
    x = panel.features[days, stocks].double()  # (R, F)
    observed = torch.isfinite(x)
    return torch.cat([torch.where(observed, x, 0.0), observed.double(), torch.ones(len(x), 1, dtype=x.dtype)], 1)


def fit_ridge(panel: DensePanel, days: Tensor, stocks: Tensor) -> Tensor:
    """Coefficients (2F + 1, H) fitted on the training rows, one column per horizon; unlabelled rows skipped."""
    x = _design(panel, days, stocks)  # (R, 2F + 1)
    y = panel.targets[days, stocks].double()  # (R, H)
    betas = []
    for k in range(y.shape[1]):
        ok = torch.isfinite(y[:, k])
        xk, yk = x[ok], y[ok, k]
        gram = xk.T @ xk + RIDGE_LAMBDA * len(xk) * torch.eye(xk.shape[1], dtype=xk.dtype)
        betas.append(torch.linalg.solve(gram, xk.T @ yk))
    return torch.stack(betas, 1)


def baseline_forecasts(panel: DensePanel, days: Tensor, stocks: Tensor, ridge_beta: Tensor) -> dict[str, Tensor]:
    """{source: (R, H) forecasts} for the rows (days, stocks): momentum, reversal, ridge and maybe oracle."""
    n_h = len(panel.horizons)
    momentum = trailing_return(panel, days, stocks, 20)
    reversal = -trailing_return(panel, days, stocks, 5)
    out = {
        "momentum": momentum[:, None].expand(-1, n_h).contiguous(),
        "reversal": reversal[:, None].expand(-1, n_h).contiguous(),
        "ridge": (_design(panel, days, stocks) @ ridge_beta).float(),
    }
    if panel.oracle is not None:
        out["oracle"] = panel.oracle[days, stocks]
    return out
