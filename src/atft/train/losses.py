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
  :math:`f` under which the forecasts of the day count as collapsed;
* listwise: :math:`\operatorname{KL}(\operatorname{softmax}(z_r) \,\Vert\, \operatorname{softmax}(z_{\hat{y}}))`
  with :math:`z_r` the target's centred ranks and :math:`z_{\hat{y}}` the centred forecasts, each at unit
  std over the day: ListNet's top-one cross-entropy less its floor, so 0 for a forecast in the target's order
  at the ranks' spacing. Where the rank term weighs every pair of stocks alike, the softmax puts about 30
  times the weight on the day's top stock as on its bottom one: a listwise loss that cares most about the
  names a long book would hold. Off by default (weight 0); it is logged whatever its weight.

With ``loss.target: rank`` every term sees, in place of :math:`y`, its centred rank within the day divided
by the ranks' standard deviation: a target with unit spread whose order is the return's. Real daily returns
have heavy tails and a few vendor artefacts; a day's extreme mover then weighs no more than its rank, which
is all that RankIC scores. The forecasts stay in the target's standard units.

With ``loss.target: sector`` every term sees :math:`y` less the mean of the labelled stocks of its sector
that day: what a stock does beyond its industry. The sector's common move is much of a day's dispersion and
hard to forecast from a stock's own history; taking it out of the target leaves the within-sector ordering
to learn. A stock alone in its sector that day has a target of 0. RankIC is still scored on the raw return.

The total is :math:`\sum_h \omega_h \sum_k \lambda_k \, \text{term}_{k,h}` with horizon weights
:math:`\omega_h \propto 1/\sqrt{h}` by default. A horizon with fewer than 3 labelled stocks that day adds
nothing to the cross-sectional terms.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from atft.config import LossConfig
from atft.metrics.ranks import masked_centred, masked_mean

TERMS = ("pinball", "rank", "sharpe", "dispersion", "listwise")
_EPS = 1e-8
_MASKED_LOGIT = -1e4  # far below any unit-std logit, finite so that an empty column has no NaN


def horizon_weights(cfg: LossConfig, horizons: list[int]) -> Tensor:
    r"""The configured weights, or :math:`1/\sqrt{h}` normalised to sum to 1."""
    raw = cfg.horizon_weights if cfg.horizon_weights is not None else [1 / math.sqrt(h) for h in horizons]
    weights = torch.tensor(raw, dtype=torch.float32)
    return weights / weights.sum()


def _length(x: Tensor) -> Tensor:
    """(H,) column norms of (N, H) ``x``, kept off 0 so that a constant column has a finite gradient."""
    return torch.sqrt((x * x).sum(0) + _EPS**2)


def _ordinal_ranks(y: Tensor, mask: Tensor) -> Tensor:
    """(N, H) ranks 0..n_k-1 of the labelled rows within their column; the others rank after them."""
    order = torch.argsort(torch.where(mask, y, torch.inf), dim=0, stable=True)
    positions = torch.arange(len(y), dtype=y.dtype, device=y.device)[:, None].expand_as(y)
    return torch.empty_like(y).scatter_(0, order, positions)


def _masked_log_softmax(z: Tensor, mask: Tensor) -> Tensor:
    """(N, H) log-softmax of ``z`` over the labelled rows of each column; the others get a finite floor."""
    return torch.log_softmax(torch.where(mask, z, _MASKED_LOGIT), dim=0)


def _list_kl(target: Tensor, forecast: Tensor, mask: Tensor) -> Tensor:
    """(H,) KL divergence of the top-one distributions ``softmax(target)`` to ``softmax(forecast)`` per column.

    Masked rows carry a logit of ``_MASKED_LOGIT``, so their probability underflows to 0 and they add nothing
    and get no gradient; a column without labels stays finite (and is dropped by the caller).
    """
    log_t, log_p = _masked_log_softmax(target, mask), _masked_log_softmax(forecast, mask)
    return torch.where(mask, log_t.exp() * (log_t - log_p), 0.0).sum(0)


def _less_group_mean(y: Tensor, mask: Tensor, group: Tensor, n_groups: int) -> Tensor:
    """(n, H) ``y`` less the mean of the labelled rows of the same group, per column; unlabelled rows stay 0."""
    weight = mask.to(y.dtype)
    sums = y.new_zeros(n_groups, y.shape[1]).index_add_(0, group, y * weight)
    counts = y.new_zeros(n_groups, y.shape[1]).index_add_(0, group, weight)
    return (y - (sums / counts.clamp(min=1)).index_select(0, group)) * weight


class DayLoss:
    r"""Loss of one day's cross-section: ``total, terms = loss(quantiles, point, y, y_mask, scale)``.

    ``terms`` holds each term already combined over horizons (with :math:`\omega_h`) and before its weight
    :math:`\lambda_k`, so ``total == sum(cfg.<term> * terms[term])`` exactly (logged every logging step).

    Args:
        cfg: term weights, the dispersion floor, horizon weights.
        horizons: horizons in days, the second axis of the forecasts.
        levels: quantile levels, the last axis of ``quantiles``.
    """

    def __init__(self, cfg: LossConfig, horizons: list[int], levels: list[float], n_sectors: int = 1) -> None:
        self.cfg = cfg
        self.n_sectors = n_sectors  # sector codes are 0..n_sectors-1: a fixed size, no host sync to find it
        self.omega = horizon_weights(cfg, horizons)
        self.levels = torch.tensor(levels, dtype=torch.float32)
        self.lambdas = {name: float(getattr(cfg, name)) for name in TERMS}

    def __call__(
        self,
        quantiles: Tensor,
        point: Tensor,
        y: Tensor,
        y_mask: Tensor,
        scale: Tensor,
        sector: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """quantiles (n, H, Q), point (n, H), y and y_mask (n, H), scale (H,), sector (n,) -> (total, terms).

        ``sector`` (int64 codes below ``n_sectors``) is needed by ``loss.target: sector`` only.

        Every horizon at once, the unlabelled rows masked out rather than indexed away: a boolean index has
        a data-dependent shape, and finding it costs a GPU a host sync per horizon and day. A masked row adds
        nothing and gets no gradient, whatever it holds (a NaN label, a forecast of a stock without one).
        """
        quantiles, point = quantiles.float(), point.float()  # the loss stays fp32 under autocast
        levels, omega, scale = self.levels.to(y.device), self.omega.to(y.device), scale.float()
        n = y_mask.sum(0)  # (H,) labelled stocks per horizon
        ys = torch.where(y_mask, y.float(), 0.0) / scale  # standard units
        if self.cfg.target == "sector":
            if sector is None:
                raise ValueError("loss.target: sector needs the sector code of each row")
            ys = _less_group_mean(ys, y_mask, sector, self.n_sectors)
        ps, qs = point / scale, quantiles / scale[:, None]
        rc = masked_centred(_ordinal_ranks(ys, y_mask), y_mask)
        rc_length = _length(rc)
        rz = rc / (rc_length / n.clamp(min=1).sqrt() + _EPS)  # centred ranks at unit std over the labelled rows
        if self.cfg.target in ("rank", "rank_sum"):  # rank_sum: the labels are already sums of ranks
            ys = rz
        err = ys[..., None] - qs  # (n, H, Q)
        pinball = masked_mean(torch.maximum(levels * err, (levels - 1) * err).mean(-1), y_mask)
        pc, yc = masked_centred(ps, y_mask), masked_centred(ys, y_mask)
        p_length, y_length = _length(pc), _length(yc)
        p_std, y_std = p_length / n.clamp(min=1).sqrt(), y_length / n.clamp(min=1).sqrt()
        weights = pc / (pc.abs().sum(0) + _EPS)  # dollar-neutral, unit gross
        per_horizon = {
            "pinball": pinball,
            "rank": 1 - (pc * rc).sum(0) / (p_length * rc_length + _EPS),
            "sharpe": -(weights * ys).sum(0) / (y_std + _EPS),
            "dispersion": torch.relu(self.cfg.dispersion_floor - p_std / (y_std + _EPS)) ** 2,
            "listwise": _list_kl(rz, pc / (p_std + _EPS), y_mask),
        }
        enough = {"pinball": n > 0} | dict.fromkeys(TERMS[1:], n >= 3)  # cross-sectional terms need 3 stocks
        terms = {name: (omega * torch.where(enough[name], value, 0.0)).sum() for name, value in per_horizon.items()}
        total = sum((self.lambdas[name] * value for name, value in terms.items()), start=y.new_zeros(()))
        return total, terms
