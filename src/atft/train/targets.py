"""Training labels other than the forward return: ``loss.target: rank_sum``.

A stock's h-day forward return is dominated by its few largest daily moves (earnings, news), so the rank of
that return within the day is a noisy label for a model that is scored by rank. The sum, over the h days
ahead, of each day's *ranked* 1-day return weighs every day the same: a bounded-influence label for the same
horizon, built from the same days, so it looks no further ahead than ``target_<h>d`` does.

Only the training days get it. The validation and test days keep the forward returns, so every metric and
the epoch choice are scored on what a user trades. The forecasts come out in the units of the sums: scores
that rank stocks (all the metrics need), not returns.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from scipy.stats import rankdata

from atft.data.panel import DensePanel


def standard_ranks(returns: torch.Tensor) -> torch.Tensor:
    """[D, N] -> [D, N]: each day's ranks (ties averaged), centred, at unit std; NaN where the input is NaN.

    A day with fewer than two values, or with no spread, has no order: NaN throughout.
    """
    ranks = rankdata(returns.double().numpy(), axis=1, nan_policy="omit")
    known = np.isfinite(ranks)
    count = np.maximum(known.sum(1, keepdims=True), 1)
    centred = ranks - np.where(known, ranks, 0.0).sum(1, keepdims=True) / count
    std = np.sqrt(np.where(known, centred**2, 0.0).sum(1, keepdims=True) / count)
    return torch.from_numpy(centred / np.where(std > 0, std, np.nan))


def daily_rank_sums(panel: DensePanel, days: range) -> DensePanel:
    """``panel`` with the labels of ``days`` replaced by the h-day sums of the days' ranked 1-day returns.

    The label of horizon h on day d is the sum of the standard ranks of ``target_1d`` on days d .. d+h-1: the
    1-day returns from d to d+h. It is NaN where ``target_<h>d`` is, or where any of those h days has no
    1-day label for the stock. Needs horizon 1 (the config checks it).
    """
    z = standard_ranks(panel.targets[:, :, panel.horizons.index(1)])  # [D, N] float64
    known = torch.isfinite(z)
    zero_row = torch.zeros(1, z.shape[1], dtype=torch.float64)
    sums = torch.cat([zero_row, torch.where(known, z, 0.0).cumsum(0)])  # sums[i] = z[0] + .. + z[i-1]
    counts = torch.cat([zero_row, known.double().cumsum(0)])
    targets = panel.targets.clone()
    n_days = panel.n_days
    for k, h in enumerate(panel.horizons):
        start, stop = days.start, min(days.stop, n_days - h + 1)  # the last h - 1 days have no full window
        window = torch.arange(start, max(start, stop))
        total = sums[window + h] - sums[window]
        full = (counts[window + h] - counts[window] == h) & torch.isfinite(panel.targets[window, :, k])
        targets[days.start : days.stop, :, k] = float("nan")
        targets[window, :, k] = torch.where(full, total, torch.nan).float()
    return dataclasses.replace(panel, targets=targets)
