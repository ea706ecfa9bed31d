"""The per-day RankIC of :func:`atft.metrics.finance.daily_rank_ic`, in torch, for one day's cross-section.

The training loop measures a RankIC per horizon on every training day (the learning-signal monitor) on the
tensors it already holds, on their device; this is the same statistic as the evaluation's -- Spearman's rho
with tied values sharing their average rank (``scipy.stats.spearmanr``), NaN with fewer than ``MIN_STOCKS``
valid rows or a constant pred or target -- so a training RankIC and a test RankIC mean the same thing.

Cost: one sort of (N, H) per input and a few (N, H) element-wise passes; no host sync (the old per-horizon
``int(mask.sum())`` was one per horizon per day). Ranks and sums are float64: float32 sums of squared ranks
lose ~1e-6 of the correlation at a few thousand stocks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from atft.metrics.finance import MIN_STOCKS


def average_ranks(values: Tensor, mask: Tensor) -> Tensor:
    """(N, H) float64 rank 1..n_k of each valid row within its column, ties sharing their mean rank.

    Invalid rows (``mask`` False) sort after every valid one and get ranks above n_k, to be ignored.

    Shapes:
        values: (N, H) any real dtype; mask: (N, H) bool. Returns (N, H) float64.
    """
    x = torch.where(mask, values.double(), torch.inf)
    sorted_x, order = torch.sort(x, dim=0)  # (N, H)
    n = x.shape[0]
    pos = torch.arange(n, device=x.device).unsqueeze(1).expand_as(x)  # (N, H) 0-based sorted position
    starts_run = torch.ones_like(sorted_x, dtype=torch.bool)
    starts_run[1:] = sorted_x[1:] != sorted_x[:-1]
    ends_run = torch.ones_like(starts_run)
    ends_run[:-1] = starts_run[1:]
    first = torch.cummax(torch.where(starts_run, pos, 0), dim=0).values  # first position of each row's run
    last = torch.flip(torch.cummin(torch.flip(torch.where(ends_run, pos, n - 1), [0]), dim=0).values, [0])
    ranks = torch.empty_like(sorted_x)
    return ranks.scatter_(0, order, (first + last).double() / 2 + 1)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """(H,) mean of (N, H) ``x`` over the rows ``mask`` keeps, per column; 0 for a column without one.

    Masked, not indexed: a boolean index has a data-dependent shape, which costs a GPU a host sync. A dropped
    row counts for nothing and gets no gradient, whatever it holds (NaN included).
    """
    return torch.where(mask, x, 0.0).sum(0) / mask.sum(0).clamp(min=1)


def masked_centred(x: Tensor, mask: Tensor) -> Tensor:
    """(N, H) ``x`` minus its column's :func:`masked_mean`, 0 on the rows ``mask`` drops (whatever they hold)."""
    return torch.where(mask, x - masked_mean(x, mask), 0.0)


def day_rank_ic(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """(H,) Spearman rank IC of ``pred`` and ``target`` over one day's valid rows, per column.

    RankIC_k = Σ_i (r_ik - r̄_k)(s_ik - s̄_k) / sqrt(Σ_i (r_ik - r̄_k)² · Σ_i (s_ik - s̄_k)²) over the rows i
    with ``mask[i, k]``, r and s the average ranks of pred and target among those rows: the Pearson IC of
    the ranks, as :func:`atft.metrics.finance.daily_rank_ic`. NaN where a column has fewer than
    ``MIN_STOCKS`` valid rows, a constant pred or target, or a non-finite valid value. Returns float64 on
    the inputs' device.

    Shapes:
        pred, target: (N, H); mask: (N, H) bool (True = labelled, valid). Returns (H,).
    """
    if not pred.shape == target.shape == mask.shape or pred.dim() != 2:
        raise ValueError(
            f"pred, target and mask must share one (N, H) shape, got {pred.shape}, {target.shape}, {mask.shape}"
        )
    finite = torch.isfinite(pred) & torch.isfinite(target)
    n = mask.sum(0)  # (H,)
    a, b = (masked_centred(average_ranks(x, mask), mask) for x in (pred, target))  # (N, H), 0 on invalid rows
    var_a, var_b = (a * a).sum(0), (b * b).sum(0)
    corr = ((a * b).sum(0) / torch.sqrt(var_a * var_b)).clamp(-1.0, 1.0)
    defined = (n >= MIN_STOCKS) & (var_a > 0) & (var_b > 0) & (finite | ~mask).all(0)
    return torch.where(defined, corr, torch.nan)
