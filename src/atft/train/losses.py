r"""The training loss: four terms per horizon, computed on one day's cross-section, each logged on its own.

All terms work in standard units (forecasts and targets divided by the horizon's target scale) so their
weights mean the same at every horizon. For horizon :math:`h` with valid stocks :math:`i` of the day:

* pinball: :math:`\frac{1}{|Q|}\sum_\tau \operatorname{mean}_i \max(\tau e_{i\tau}, (\tau - 1) e_{i\tau})`,
  :math:`e = y - q_\tau`;
* rank: :math:`1 - \operatorname{corr}(\hat{y}, \operatorname{rank}(y))` -- differentiable in the forecast,
  it rewards ordering stocks the way their returns will order (what RankIC measures);
* sharpe: :math:`-\sum_i w_i y_i / \operatorname{std}(y)` with dollar-neutral weights
  :math:`w = (\hat{y} - \bar{\hat{y}}) / \lVert \hat{y} - \bar{\hat{y}} \rVert_1`: the day's long-short return;
* dispersion: :math:`\max(0, f - \operatorname{std}(\hat{y}) / \operatorname{std}(y))^2`, a floor
  :math:`f` under which the forecasts of the day count as collapsed.

The total is :math:`\sum_h \omega_h \sum_k \lambda_k \, \text{term}_{k,h}` with horizon weights
:math:`\omega_h \propto 1/\sqrt{h}` by default. A horizon with fewer than 3 labelled stocks that day adds
nothing to the cross-sectional terms.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from atft.config import LossConfig

TERMS = ("pinball", "rank", "sharpe", "dispersion")
_EPS = 1e-8


def horizon_weights(cfg: LossConfig, horizons: list[int]) -> Tensor:
    r"""The configured weights, or :math:`1/\sqrt{h}` normalised to sum to 1."""
    raw = cfg.horizon_weights if cfg.horizon_weights is not None else [1 / math.sqrt(h) for h in horizons]
    weights = torch.tensor(raw, dtype=torch.float32)
    return weights / weights.sum()


def _pinball(q: Tensor, y: Tensor, levels: Tensor) -> Tensor:
    err = y[:, None] - q  # (n, Q)
    return torch.maximum(levels * err, (levels - 1) * err).mean()


def _centered(x: Tensor) -> Tensor:
    return x - x.mean()


def _rank_term(p: Tensor, y: Tensor) -> Tensor:
    ranks = torch.empty_like(y)
    ranks[torch.argsort(y)] = torch.arange(len(y), dtype=y.dtype, device=y.device)
    pc, rc = _centered(p), _centered(ranks)
    return 1 - (pc * rc).sum() / (pc.norm() * rc.norm() + _EPS)


def _sharpe_term(p: Tensor, y: Tensor) -> Tensor:
    pc = _centered(p)
    weights = pc / (pc.abs().sum() + _EPS)
    return -(weights * y).sum() / (y.std(unbiased=False) + _EPS)


def _dispersion_term(p: Tensor, y: Tensor, floor: float) -> Tensor:
    ratio = p.std(unbiased=False) / (y.std(unbiased=False) + _EPS)
    return torch.relu(floor - ratio) ** 2


class DayLoss:
    r"""Loss of one day's cross-section: ``total, terms = loss(quantiles, point, y, y_mask, scale)``.

    ``terms`` holds each term already combined over horizons (with :math:`\omega_h`) and before its weight
    :math:`\lambda_k`, so ``total == sum(cfg.<term> * terms[term])`` exactly (logged every logging step).

    Args:
        cfg: term weights, the dispersion floor, horizon weights.
        horizons: horizons in days, the second axis of the forecasts.
        levels: quantile levels, the last axis of ``quantiles``.
    """

    def __init__(self, cfg: LossConfig, horizons: list[int], levels: list[float]) -> None:
        self.cfg = cfg
        self.omega = horizon_weights(cfg, horizons)
        self.levels = torch.tensor(levels, dtype=torch.float32)
        self.lambdas = {name: float(getattr(cfg, name)) for name in TERMS}

    def __call__(
        self, quantiles: Tensor, point: Tensor, y: Tensor, y_mask: Tensor, scale: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """quantiles (n, H, Q), point (n, H), y and y_mask (n, H), scale (H,) -> (total, terms)."""
        quantiles, point = quantiles.float(), point.float()  # the loss stays fp32 under autocast
        levels, omega = self.levels.to(y.device), self.omega.to(y.device)
        terms = {name: y.new_zeros(()) for name in TERMS}
        for k in range(y.shape[1]):
            valid = y_mask[:, k]
            if not bool(valid.any()):
                continue
            yk, pk, qk = y[valid, k] / scale[k], point[valid, k] / scale[k], quantiles[valid, k] / scale[k]
            terms["pinball"] = terms["pinball"] + omega[k] * _pinball(qk, yk, levels)
            if len(yk) >= 3:
                terms["rank"] = terms["rank"] + omega[k] * _rank_term(pk, yk)
                terms["sharpe"] = terms["sharpe"] + omega[k] * _sharpe_term(pk, yk)
                terms["dispersion"] = terms["dispersion"] + omega[k] * _dispersion_term(
                    pk, yk, self.cfg.dispersion_floor
                )
        total = sum((self.lambdas[name] * value for name, value in terms.items()), start=y.new_zeros(()))
        return total, terms
