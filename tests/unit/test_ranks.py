"""atft.metrics.ranks, the torch RankIC of one day, is finance.daily_rank_ic and scipy's spearmanr."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from atft.metrics.finance import MIN_STOCKS, daily_rank_ic
from atft.metrics.ranks import average_ranks, day_rank_ic


def _day(n: int, h: int, seed: int, decimals: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pred, target, mask) of one day: coarse values (many ties), 20% of labels missing, junk where missing."""
    rng = np.random.default_rng(seed)
    pred = np.round(rng.standard_normal((n, h)), decimals)
    target = np.round(rng.standard_normal((n, h)) * 0.02, decimals + 2)
    mask = rng.random((n, h)) > 0.2
    target[~mask] = rng.choice([np.nan, np.inf, 1e9], size=int((~mask).sum()))  # never read
    return torch.tensor(pred), torch.tensor(target), torch.tensor(mask)


@pytest.mark.parametrize(("n", "seed"), [(5, 0), (40, 1), (300, 2), (4000, 3)])
def test_matches_finance_daily_rank_ic_with_ties(n: int, seed: int) -> None:
    pred, target, mask = _day(n, 4, seed)
    got = day_rank_ic(pred, target, mask)
    for k in range(4):
        ok = mask[:, k].numpy()
        days = np.zeros(int(ok.sum()), dtype=np.int64)
        want = daily_rank_ic(days, pred[ok, k].numpy(), target[ok, k].numpy()).values
        if want.size:
            assert float(got[k]) == pytest.approx(float(want[0]), abs=1e-9)
            rho = stats.spearmanr(pred[ok, k].numpy(), target[ok, k].numpy()).statistic
            assert float(got[k]) == pytest.approx(rho, abs=1e-9)
        else:
            assert math.isnan(float(got[k]))


def test_average_ranks_share_the_mean_rank_of_ties_like_scipy() -> None:
    values = torch.tensor([[3.0, 1.0], [1.0, 1.0], [2.0, 5.0], [1.0, 7.0], [9.0, 1.0]])
    mask = torch.tensor([[True, True], [True, True], [True, False], [True, True], [False, True]])
    ranks = average_ranks(values, mask)
    for k in range(2):
        ok = mask[:, k]
        np.testing.assert_array_equal(ranks[ok, k].numpy(), stats.rankdata(values[ok, k].numpy()))
    assert (ranks[~mask] > mask.sum(0).expand_as(ranks)[~mask]).all()  # masked rows rank after the valid ones


def test_undefined_columns_are_nan() -> None:
    n = 10
    pred = torch.randn(n, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.randn(n, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mask = torch.ones(n, 5, dtype=torch.bool)
    mask[MIN_STOCKS - 1 :, 0] = False  # column 0: too few valid rows
    pred[:, 1] = 0.5  # column 1: constant prediction
    target[:, 2] = -0.01  # column 2: constant target
    pred[3, 3] = math.nan  # column 3: a NaN forecast on a labelled row
    pred[~mask] = math.nan  # ... but a NaN forecast on an unlabelled row does not matter
    out = day_rank_ic(pred, target, mask)
    assert torch.isnan(out[:4]).all() and torch.isfinite(out[4])


def test_row_order_and_float32_do_not_matter() -> None:
    pred, target, mask = _day(200, 3, seed=4)
    base = day_rank_ic(pred, target, mask)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(day_rank_ic(pred[perm], target[perm], mask[perm]), base, rtol=0, atol=1e-12)
    # float32 rounds the values, but the rounded values keep their order and ties: the same ranks
    torch.testing.assert_close(day_rank_ic(pred.float(), target.float(), mask), base, rtol=0, atol=1e-12)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        day_rank_ic(torch.zeros(5, 2), torch.zeros(5, 3), torch.ones(5, 2, dtype=torch.bool))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    pred, target, mask = _day(3000, 4, seed=6)
    cpu = day_rank_ic(pred, target, mask)
    gpu = day_rank_ic(pred.cuda().float(), target.cuda().float(), mask.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-9)
