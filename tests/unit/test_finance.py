"""atft.metrics.finance against scipy, empyrical, a 3-day example worked by hand, and overlapping horizons."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from atft.metrics.finance import (
    daily_ic,
    daily_rank_ic,
    dispersion_ratio,
    evaluate,
    hit_rate,
    long_short_returns,
    long_short_sharpe,
    quantile_returns,
    sharpe,
)
from atft.metrics.inference import mean_inference, overlap_lag, sharpe_inference

# The hand example: stocks A..E on days 10, 11, 12 (5 stocks, so each quintile leg holds k = 1 stock).
STOCKS = np.array(list("ABCDE"))
PRED = np.array([[1, 2, 3, 4, 5], [2, 1, 3, 5, 4], [1, 3, 2, 5, 4]], dtype=float)
TARGET = np.array(
    [
        [-0.02, 0.00, -0.01, 0.01, 0.07],
        [0.01, 0.01, 0.00, 0.02, -0.04],
        [-0.03, 0.01, 0.00, 0.01, 0.01],
    ]
)
# Day 10: pred - mean = [-2,-1,0,1,2]; target mean 0.01, target - mean = [-.03,-.01,-.02,0,.06]
#   cov = .06+.01+0+0+.12 = .19; Σdp² = 10; Σdt² = .0050 -> IC = .19 / sqrt(10 * .005)
#   target ranks [1,3,2,4,5] - 3 = [-2,0,-1,1,2]; with pred ranks' [-2,-1,0,1,2]: 4+0+0+1+4 = 9 -> 9/10
# Day 11: pred - 3 = [-1,-2,0,2,1]; target mean 0: cov = -.01-.02+0+.04-.04 = -.03; Σdt² = .0022
#   target ranks [3.5,3.5,2,5,1] - 3 = [.5,.5,-1,2,-2]: cov = -.5-1+0+4-2 = .5; Σ = 9.5 -> .5 / sqrt(10 * 9.5)
# Day 12: pred - 3 = [-2,0,-1,2,1]; target mean 0: cov = .06+0+0+.02+.01 = .09; Σdt² = .0012
#   target ranks [1,4,2,4,4] - 3 = [-2,1,-1,1,1]: cov = 4+0+1+2+1 = 8; Σ = 8 -> 8 / sqrt(10 * 8)
HAND_IC = [0.19 / math.sqrt(10 * 0.005), -0.03 / math.sqrt(10 * 0.0022), 0.09 / math.sqrt(10 * 0.0012)]
HAND_RANK_IC = [0.9, 0.5 / math.sqrt(95), 8 / math.sqrt(80)]
# Long the highest pred, short the lowest: day 10 E - A = .07 - (-.02) = .09; day 11 D - B = .02 - .01 = .01;
# day 12 D - A = .01 - (-.03) = .04.
HAND_LS = [0.09, 0.01, 0.04]
# Books: {E+1, A-1} -> {D+1, B-1} -> {D+1, A-1}. Turnover Σ|Δw|/2: from cash (1+1)/2 = 1; all four
# positions change (4)/2 = 2; B and A change (2)/2 = 1.
HAND_TURNOVER = [1.0, 2.0, 1.0]


def _hand_rows(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(day, pred, target, stock) of the hand example, rows shuffled."""
    day = np.repeat([10, 11, 12], 5)
    order = np.random.default_rng(seed).permutation(day.size)
    return day[order], PRED.ravel()[order], TARGET.ravel()[order], np.tile(STOCKS, 3)[order]


def _panel(n_days: int, n_stocks: int, seed: int, signal: float = 0.1) -> tuple[np.ndarray, ...]:
    """(day, pred, target, stock) of a random panel, continuous values, rows in day order."""
    rng = np.random.default_rng(seed)
    day = np.repeat(np.arange(n_days), n_stocks)
    target = rng.standard_normal(day.size) * 0.02
    pred = signal * target / 0.02 + rng.standard_normal(day.size)
    return day, pred, target, np.tile(np.arange(n_stocks), n_days)


def test_hand_example_ic_rank_ic_long_short_turnover() -> None:
    day, pred, target, stock = _hand_rows()
    days, ic, n_skipped = daily_ic(day, pred, target)
    np.testing.assert_array_equal(days, [10, 11, 12])
    np.testing.assert_allclose(ic, HAND_IC, rtol=0, atol=1e-12)
    assert n_skipped == 0
    np.testing.assert_allclose(daily_rank_ic(day, pred, target).values, HAND_RANK_IC, rtol=0, atol=1e-12)
    ls = long_short_returns(day, pred, target, stock=stock)
    np.testing.assert_array_equal(ls.days, [10, 11, 12])
    np.testing.assert_allclose(ls.returns, HAND_LS, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(ls.turnover, HAND_TURNOVER)


def test_hand_example_sharpe_gross_net_and_non_overlapping() -> None:
    day, pred, target, stock = _hand_rows(seed=1)
    daily = long_short_sharpe(day, pred, target, horizon=1, stock=stock, cost_bps=100)
    # r = [9, 1, 4] %: mean 14/3, deviations [13, -11, -2]/3, Σ² = 294/9, var = 294/18 = 49/3, std = 7/sqrt(3)
    # -> (14/3) / (7/sqrt(3)) = 2/sqrt(3), times sqrt(252)
    assert daily["sharpe"] == pytest.approx(2 / math.sqrt(3) * math.sqrt(252), rel=1e-12)
    # net of 100 bp per unit turnover: [9, 1, 4] - [1, 2, 1] = [8, -1, 3] %: mean 10/3,
    # deviations [14, -13, -1]/3, Σ² = 366/9, var = 183/9 = 61/3
    assert daily["sharpe_net"] == pytest.approx((10 / 3) / math.sqrt(61 / 3) * math.sqrt(252), rel=1e-12)
    assert daily["mean_return"] == pytest.approx(0.14 / 3, rel=1e-12)
    assert daily["turnover"] == pytest.approx(4 / 3, rel=1e-12)
    assert daily["n_periods"] == 3
    # h = 2 rebalances on days 10 and 12 only: r = [.09, .04], mean .065, std = .05/sqrt(2); annualised by 252/2.
    # Turnover {E+1, A-1} -> {D+1, A-1} is (1+1)/2 = 1 (day 11's book is never held).
    two = long_short_sharpe(day, pred, target, horizon=2, stock=stock, cost_bps=100)
    assert two["sharpe"] == pytest.approx(0.065 / (0.05 / math.sqrt(2)) * math.sqrt(126), rel=1e-12)
    assert two["turnover"] == 1.0
    assert two["n_periods"] == 2
    # net [.08, .03]: mean .055, std .05/sqrt(2)
    assert two["sharpe_net"] == pytest.approx(0.055 / (0.05 / math.sqrt(2)) * math.sqrt(126), rel=1e-12)


def test_evaluate_reports_the_hand_example_under_its_stable_keys() -> None:
    day, pred, target, stock = _hand_rows(seed=2)
    out = evaluate(day, pred, target, horizon=1, stock=stock, cost_bps=100)
    assert list(out) == [
        "ic", "ic_std", "icir", "ic_se", "ic_t", "ic_p",
        "rank_ic", "rank_ic_std", "rank_icir", "rank_ic_se", "rank_ic_t", "rank_ic_p",
        "sharpe", "sharpe_se", "sharpe_net", "sharpe_net_se", "ls_mean", "turnover", "hit_rate",
        "dispersion_ratio", "n_days",
    ]  # fmt: skip
    assert out["ic"] == pytest.approx(np.mean(HAND_IC), rel=1e-12)
    assert out["ic_std"] == pytest.approx(np.std(HAND_IC, ddof=1), rel=1e-12)
    assert out["icir"] == pytest.approx(np.mean(HAND_IC) / np.std(HAND_IC, ddof=1), rel=1e-12)
    assert out["rank_ic"] == pytest.approx(np.mean(HAND_RANK_IC), rel=1e-12)
    # the errors are mean_inference's of the daily series at overlap_lag(h = 1, 3 days) = 2
    rank_ic = mean_inference(HAND_RANK_IC, lag=2)
    assert (out["rank_ic_se"], out["rank_ic_t"], out["rank_ic_p"]) == pytest.approx(
        (rank_ic.se, rank_ic.t, rank_ic.p), rel=1e-9
    )
    assert out["ic_se"] == pytest.approx(mean_inference(HAND_IC, lag=2).se, rel=1e-9)
    assert out["sharpe"] == pytest.approx(2 * math.sqrt(84), rel=1e-12)
    assert out["sharpe_se"] == pytest.approx(sharpe_inference(HAND_LS, 252).se, rel=1e-9)
    assert out["ls_mean"] == pytest.approx(0.14 / 3, rel=1e-12)
    assert out["turnover"] == pytest.approx(4 / 3, rel=1e-12)
    assert out["n_days"] == 3


def _persistent_signal_panel(n_days: int, horizon: int, seed: int) -> tuple[np.ndarray, ...]:
    """(day, pred, target): a slow signal (AR(1), phi 0.98) that drives tomorrow's return; target = the sum of
    the next ``horizon`` daily returns, as a real h-day label, so neighbouring days' labels overlap."""
    rng = np.random.default_rng(seed)
    n_stocks, phi = 200, 0.98
    signal = np.empty((n_days + horizon, n_stocks))
    signal[0] = rng.standard_normal(n_stocks)
    for d in range(1, signal.shape[0]):
        signal[d] = phi * signal[d - 1] + math.sqrt(1 - phi**2) * rng.standard_normal(n_stocks)
    daily = 0.02 * rng.standard_normal(signal.shape)
    daily[1:] += 0.001 * signal[:-1]
    cum = np.cumsum(np.vstack([np.zeros(n_stocks), daily]), axis=0)
    target = cum[1 + horizon : 1 + horizon + n_days] - cum[1 : n_days + 1]  # returns of days d+1..d+h
    day = np.repeat(np.arange(n_days), n_stocks)
    return day, signal[:n_days].ravel(), target.ravel()


def test_overlapping_horizons_get_smaller_t_statistics_than_iid_errors_give() -> None:
    iid_over_hac = {}
    for h in (1, 20):
        day, pred, target = _persistent_signal_panel(n_days=500, horizon=h, seed=12)
        out = evaluate(day, pred, target, horizon=h)
        iid_t = out["rank_icir"] * math.sqrt(out["n_days"])  # ICIR x sqrt(days): the t before this module
        assert out["rank_ic_t"] == pytest.approx(out["rank_ic"] / out["rank_ic_se"], rel=1e-12)
        iid_over_hac[h] = iid_t / out["rank_ic_t"]
    assert 0.7 < iid_over_hac[1] < 1.5  # a slow signal alone correlates neighbouring days a little
    assert iid_over_hac[20] > 2.5  # 20-day labels overlap by 19 days: the iid t is inflated several-fold


def _random_days_with_ties_and_nans(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Days of 1..40 rows, coarse values (many ties), 10% NaN, a constant-target day, rows shuffled."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 40, size=50)
    day = np.repeat(np.arange(50), sizes)
    pred = np.round(rng.standard_normal(day.size), 1)
    target = np.round(rng.standard_normal(day.size) * 0.02, 3)
    pred[rng.random(day.size) < 0.1] = np.nan
    target[rng.random(day.size) < 0.1] = np.nan
    day = np.append(day, [99] * 6)  # constant target: no IC
    pred = np.append(pred, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    target = np.append(target, [0.01] * 6)
    order = rng.permutation(day.size)
    return day[order], pred[order], target[order]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_daily_ic_and_rank_ic_match_scipy_on_every_day(seed: int) -> None:
    day, pred, target = _random_days_with_ties_and_nans(seed)
    expected: dict[int, tuple[float, float]] = {}
    for d in np.unique(day):
        ok = (day == d) & ~np.isnan(pred) & ~np.isnan(target)
        x, y = pred[ok], target[ok]
        if ok.sum() >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            expected[int(d)] = (stats.pearsonr(x, y).statistic, stats.spearmanr(x, y).statistic)
    assert 99 not in expected and len(expected) < np.unique(day).size - 1  # some thin days were dropped too
    ic, rank_ic = daily_ic(day, pred, target), daily_rank_ic(day, pred, target)
    for series, column in ((ic, 0), (rank_ic, 1)):
        np.testing.assert_array_equal(series.days, sorted(expected))
        np.testing.assert_allclose(series.values, [expected[d][column] for d in sorted(expected)], rtol=0, atol=1e-9)
        assert series.n_skipped == np.unique(day).size - len(expected)


def test_sharpe_matches_empyrical_daily_and_non_overlapping() -> None:
    empyrical = pytest.importorskip("empyrical")
    returns = np.random.default_rng(3).normal(0.0005, 0.01, size=300)
    assert sharpe(returns, 252) == pytest.approx(empyrical.sharpe_ratio(returns, annualization=252), abs=1e-9)
    day, pred, target, stock = _panel(n_days=103, n_stocks=25, seed=4)
    r = long_short_returns(day, pred, target).returns
    one = long_short_sharpe(day, pred, target, horizon=1)
    assert one["sharpe"] == pytest.approx(empyrical.sharpe_ratio(r, annualization=252), abs=1e-9)
    five = long_short_sharpe(day, pred, target, horizon=5, stock=stock)
    # non-overlapping: every 5th day of the daily series from the first, annualised by 252/5
    assert five["sharpe"] == pytest.approx(empyrical.sharpe_ratio(r[::5], annualization=252 / 5), abs=1e-9)
    assert five["n_periods"] == 21
    assert five["mean_return"] == pytest.approx(r[::5].mean(), rel=1e-12)
    assert five["sharpe"] != pytest.approx(sharpe(r, 252 / 5))  # the overlapping series would differ


def test_sharpe_is_nan_where_undefined() -> None:
    assert math.isnan(sharpe([0.01], 252))
    assert math.isnan(sharpe([0.01, 0.01, 0.01], 252))  # std 0: undefined, not ±inf
    assert math.isnan(sharpe([0.01, np.nan, 0.02], 252))
    assert sharpe([0.01, 0.03], 4) == pytest.approx(0.02 / math.sqrt(0.0002) * 2)


def test_rows_with_nan_are_ignored_and_thin_days_counted() -> None:
    day, pred, target, stock = _panel(n_days=30, n_stocks=12, seed=5)
    base = evaluate(day, pred, target, horizon=5, stock=stock, cost_bps=10)
    junk_day = np.array([3, 3, 7, 30, 30, 30, 30])  # day 30: two valid rows, too few for any statistic
    junk_pred = np.array([np.nan, 0.5, np.nan, 0.1, 0.2, np.nan, 0.3])
    junk_target = np.array([0.1, np.nan, np.nan, 0.01, 0.02, 0.03, np.nan])
    junk_stock = np.array([100, 101, 102, 0, 1, 2, 3])
    args = (
        np.append(day, junk_day),
        np.append(pred, junk_pred),
        np.append(target, junk_target),
    )
    dirty = evaluate(*args, horizon=5, stock=np.append(stock, junk_stock), cost_bps=10)
    assert dirty == pytest.approx(base, rel=1e-12, nan_ok=True)
    assert daily_ic(*args).n_skipped == daily_ic(day, pred, target).n_skipped + 1


def test_undefined_metrics_are_nan_not_zero_and_raise_nothing() -> None:
    day, pred, target, stock = _panel(n_days=1, n_stocks=20, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one_day = evaluate(day, pred, target, horizon=1, stock=stock)
        empty = evaluate(day, np.full(day.size, np.nan), target, horizon=1, stock=stock)
    assert one_day["ic"] == pytest.approx(stats.pearsonr(pred, target).statistic)
    nan_keys = {f"{x}_{m}" for x in ("ic", "rank_ic") for m in ("std", "se", "t", "p")} | {"icir", "rank_icir"}
    nan_keys |= {"sharpe", "sharpe_se", "sharpe_net", "sharpe_net_se"}
    assert {k for k, v in one_day.items() if math.isnan(v)} == nan_keys
    assert empty.pop("n_days") == 0
    assert all(math.isnan(v) for v in empty.values())


def test_without_stock_ids_turnover_and_net_sharpe_are_nan() -> None:
    day, pred, target, _ = _panel(n_days=40, n_stocks=10, seed=7)
    out = long_short_sharpe(day, pred, target, horizon=1)
    assert math.isfinite(out["sharpe"])
    assert math.isnan(out["turnover"]) and math.isnan(out["sharpe_net"])


def test_perfect_predictor_scores_one_and_reversed_minus_one() -> None:
    day, _, target, stock = _panel(n_days=20, n_stocks=50, seed=8)
    perfect = evaluate(day, target, target, horizon=1, stock=stock)
    reversed_ = evaluate(day, -target, target, horizon=1, stock=stock)
    assert perfect["ic"] == pytest.approx(1.0, abs=1e-12) and perfect["rank_ic"] == pytest.approx(1.0, abs=1e-12)
    assert reversed_["ic"] == pytest.approx(-1.0, abs=1e-12) and reversed_["rank_ic"] == pytest.approx(-1.0, abs=1e-12)
    assert perfect["hit_rate"] == 1.0 and reversed_["hit_rate"] == 0.0
    assert perfect["sharpe"] > 0 and reversed_["sharpe"] == pytest.approx(-perfect["sharpe"], rel=1e-12)


def test_hit_rate_is_pooled_over_rows_against_each_days_mean() -> None:
    day = np.array([0, 0, 0, 0, 1, 1, 1])
    pred = np.array([1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0])
    target = np.array([4.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0])
    # day 0: means 2.5, signs pred [-,-,+,+] vs target [+,-,-,+] -> 2 hits of 4; day 1: 3 of 3 (0 == 0 counts)
    assert hit_rate(day, pred, target) == pytest.approx(5 / 7)  # pooled rows, not the mean of days (0.75)


def test_dispersion_ratio_is_the_mean_ratio_of_daily_stds() -> None:
    day, _, target, _ = _panel(n_days=10, n_stocks=30, seed=9)
    pred = 2 * target + day  # per-day shift does not change a cross-sectional std
    assert dispersion_ratio(day, pred, target) == pytest.approx(2.0, rel=1e-12)
    day = np.append(day, [50, 50, 50])  # a constant-target day is skipped, not a division by zero
    assert dispersion_ratio(day, np.append(pred, [1.0, 2.0, 3.0]), np.append(target, [0.0] * 3)) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("n", "quantile", "k"), [(3, 0.2, 1), (7, 0.2, 1), (10, 0.2, 2), (12, 0.5, 6), (180, 0.35, 63)]
)
def test_each_leg_holds_floor_n_q_but_at_least_one_stock(n: int, quantile: float, k: int) -> None:
    values = np.arange(n, dtype=float)
    # target = pred = 0..n-1: long mean (n-1) - (k-1)/2 minus short mean (k-1)/2 = n - k
    ls = long_short_returns(np.zeros(n, dtype=int), values, values, quantile=quantile)
    assert ls.returns[0] == pytest.approx(n - k)


def test_pred_ties_at_a_leg_edge_go_by_row_order_and_a_flat_day_has_no_portfolio() -> None:
    rng = np.random.default_rng(10)
    pred = rng.integers(0, 3, size=200).astype(float)  # ~67 stocks tie at each extreme; each leg holds 40
    target = rng.standard_normal(200)
    short, long = np.flatnonzero(pred == 0)[:40], np.flatnonzero(pred == 2)[-40:]  # earliest lows, latest highs
    day = np.append(np.zeros(200, dtype=int), [1, 1, 1])  # day 1: every prediction equal, nothing to rank
    ls = long_short_returns(day, np.append(pred, [5.0] * 3), np.append(target, [1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(ls.days, [0])
    assert ls.returns[0] == pytest.approx(target[long].mean() - target[short].mean(), rel=1e-12)
    assert ls.n_skipped == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pred": [1.0, np.inf, 2.0]}, "Inf"),
        ({"day": [0.0, 0.0, 0.0]}, "integer"),
        ({"target": [1.0, 2.0]}, "one length"),
        ({"stock": ["A", "A", "B"]}, "more than once"),
        ({"horizon": 0}, "horizon"),
    ],
)
def test_bad_input_fails_loudly(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"day": [0, 0, 0], "pred": [3.0, 1.0, 2.0], "target": [0.1, 0.2, 0.3], "horizon": 1}
    with pytest.raises(ValueError, match=message):
        long_short_sharpe(**{**args, **kwargs})  # type: ignore[arg-type]


def test_quantile_outside_zero_to_half_is_rejected() -> None:
    with pytest.raises(ValueError, match="quantile"):
        long_short_returns([0, 0, 0], [1.0, 2.0, 3.0], [0.1, 0.2, 0.3], quantile=0.6)


def test_quantile_returns_of_a_planted_monotone_signal_are_monotone_and_significant() -> None:
    day, pred, target, _ = _panel(n_days=250, n_stocks=100, seed=13, signal=0.3)
    out = quantile_returns(day, pred, target, n_quantiles=5)
    assert out.daily.shape == (250, 5) and out.n_skipped == 0
    assert np.all(np.diff(out.means) > 0) and out.monotonicity == pytest.approx(1.0)
    assert out.spread.mean == pytest.approx(out.means[-1] - out.means[0], rel=1e-9)
    assert out.spread.t > 5
    for k in range(5):  # each bucket's error is mean_inference's of its daily series
        assert out.standard_errors[k] == pytest.approx(
            mean_inference(out.daily[:, k], lag=overlap_lag(1, 250)).se, rel=1e-12
        )


def test_quantile_returns_of_noise_are_not_significant() -> None:
    day, pred, target, _ = _panel(n_days=250, n_stocks=100, seed=14, signal=0.0)
    out = quantile_returns(day, pred, target, n_quantiles=10, horizon=5)
    assert out.spread.p > 0.05 and abs(out.spread.t) < 2
    assert out.spread.lag == overlap_lag(5, 250)


def test_quantile_buckets_are_equal_sized_ties_share_one_and_row_order_does_not_matter() -> None:
    rng = np.random.default_rng(15)
    day = np.repeat(np.arange(3), 23)
    pred = rng.integers(0, 8, size=day.size).astype(float)  # heavy ties
    pred[23:46] = rng.permutation(23)  # day 1: no ties
    target = rng.standard_normal(day.size)
    out = quantile_returns(day, pred, target, n_quantiles=4)
    order = rng.permutation(day.size)
    shuffled = quantile_returns(day[order], pred[order], target[order], n_quantiles=4)
    np.testing.assert_allclose(shuffled.daily, out.daily, rtol=1e-12, atol=1e-15)
    # day 1, ranks r = 1..23: bucket floor((r - 1/2) * 4 / 23) holds ranks 1-6, 7-11, 12-17, 18-23 (sizes +-1)
    ranks = stats.rankdata(pred[23:46])
    for k, (low, high) in enumerate([(1, 6), (7, 11), (12, 17), (18, 23)]):
        expected = target[23:46][(ranks >= low) & (ranks <= high)].mean()
        assert out.daily[1, k] == pytest.approx(expected, rel=1e-12)
    # day 0: every stock tied at a value shares one bucket, so each bucket's mean is a mean over whole tie groups
    ranks = stats.rankdata(pred[:23])
    bucket = np.floor((ranks - 0.5) * 4 / 23).astype(int)
    for value in np.unique(pred[:23]):
        assert np.unique(bucket[pred[:23] == value]).size == 1
    for k in range(4):
        expected = target[:23][bucket == k].mean() if (bucket == k).any() else math.nan
        np.testing.assert_allclose(out.daily[0, k], expected, rtol=1e-12)
