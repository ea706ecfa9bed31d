"""atft.metrics.inference: hand-worked examples, brute-force formulas, scipy/statsmodels, seeded simulations.

The simulations check what the errors are for: a 95% interval for the mean of an overlapping (MA(h-1)) or
AR(1) series covers the true mean about 95% of the time, where the iid interval does not.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from atft.metrics.inference import (
    block_bootstrap_ratio,
    mean_inference,
    newey_west_se,
    overlap_lag,
    paired_difference,
    sharpe_inference,
    sharpe_ratio,
)


def _ma(n_series: int, n: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """(n_series, n) sums of h consecutive iid N(0, 1): an h-day overlap, MA(h-1) with equal weights."""
    c = np.cumsum(np.pad(rng.standard_normal((n_series, n + h - 1)), ((0, 0), (1, 0))), axis=1)
    return c[:, h:] - c[:, :-h]


def _ar1(n_series: int, n: int, phi: float, rng: np.random.Generator) -> np.ndarray:
    """(n_series, n) stationary AR(1) with unit innovations, started from its stationary law."""
    u = rng.standard_normal((n_series, n))
    x = np.empty_like(u)
    x[:, 0] = u[:, 0] / math.sqrt(1 - phi**2)
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + u[:, t]
    return x


def _brute_force_nw(x: np.ndarray, lag: int) -> float:
    """Newey-West se of the mean, straight from the autocovariance formula, one loop per lag."""
    n, e = x.size, x - x.mean()
    omega = sum(e[t] * e[t] for t in range(n)) / n
    for j in range(1, lag + 1):
        omega += 2 * (1 - j / (lag + 1)) * sum(e[t] * e[t - j] for t in range(j, n)) / n
    return math.sqrt(omega / n)


def test_newey_west_hand_example() -> None:
    # x = 1..4: mean 2.5, e = [-1.5, -.5, .5, 1.5]; γ0 = 5/4; γ1 = (.75 - .25 + .75)/4 = .3125
    # lag 1: Ω = 1.25 + 2 · (1 - 1/2) · .3125 = 1.5625; se = sqrt(1.5625 / 4) = .625
    assert newey_west_se([1.0, 2.0, 3.0, 4.0], 1) == pytest.approx(0.625, rel=1e-12)
    assert newey_west_se([1.0, 2.0, 3.0, 4.0], 0) == pytest.approx(math.sqrt(1.25 / 4), rel=1e-12)


@pytest.mark.parametrize("lag", [0, 1, 4, 17, 36])
def test_newey_west_matches_the_autocovariance_formula(lag: int) -> None:
    x = np.random.default_rng(lag).standard_normal(37).cumsum()  # strongly autocorrelated
    assert newey_west_se(x, lag) == pytest.approx(_brute_force_nw(x, lag), rel=1e-10)


def test_newey_west_matches_statsmodels() -> None:
    import statsmodels.api as sm

    x = _ar1(1, 300, 0.6, np.random.default_rng(0))[0]
    for lag in (0, 3, 21):
        fit = sm.OLS(x, np.ones_like(x)).fit(cov_type="HAC", cov_kwds={"maxlags": lag, "use_correction": False})
        assert newey_west_se(x, lag) == pytest.approx(float(fit.bse[0]), rel=1e-10)


def test_lag_0_is_the_one_sample_t_test() -> None:
    x = np.random.default_rng(1).normal(0.1, 1.0, size=40)
    got = mean_inference(x, lag=0)
    want = stats.ttest_1samp(x, 0.0)
    interval = want.confidence_interval(0.95)
    assert (got.t, got.p, got.df) == pytest.approx((want.statistic, want.pvalue, 39), rel=1e-10)
    assert (got.ci_low, got.ci_high) == pytest.approx((interval.low, interval.high), rel=1e-10)
    assert got.se == pytest.approx(x.std(ddof=1) / math.sqrt(40), rel=1e-12)


def test_small_sample_correction_makes_the_variance_unbiased_for_white_noise() -> None:
    x = np.random.default_rng(2).standard_normal((4000, 50))
    lag = 20  # b = 21/50: the raw Newey-West variance is ~0.66 of the truth here
    raw = np.mean([newey_west_se(row, lag) ** 2 for row in x]) * 50
    corrected = np.mean([mean_inference(row, lag).se ** 2 for row in x]) * 50
    assert raw < 0.75
    assert corrected == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize(
    ("n", "horizon", "lag"), [(250, 1, 21), (250, 5, 21), (250, 20, 40), (1250, 20, 46), (10, 20, 9), (1, 5, 0)]
)
def test_overlap_lag_rule(n: int, horizon: int, lag: int) -> None:
    assert overlap_lag(horizon, n) == lag


def test_interval_covers_the_mean_of_an_overlapping_series_and_the_iid_one_does_not() -> None:
    n, h = 250, 5
    x = _ma(2000, n, h, np.random.default_rng(3))  # true mean 0
    results = [mean_inference(row, horizon=h) for row in x]
    covered = np.mean([r.ci_low <= 0 <= r.ci_high for r in results])
    assert 0.92 <= covered <= 0.975
    naive_half = stats.t.ppf(0.975, n - 1) * x.std(axis=1, ddof=1) / math.sqrt(n)
    assert np.mean(np.abs(x.mean(axis=1)) <= naive_half) < 0.75  # iid error: ~0.61
    # NW at lag max(h - 1, floor(4 (n/100)^(2/9))) = 4 with normal quantiles: the Bartlett kernel only counts
    # 1 - j/5 of each lag j, so its variance misses ~1/3: ~0.89
    short = np.array([newey_west_se(row, 4) for row in x])
    assert np.mean(np.abs(x.mean(axis=1)) <= 1.96 * short) < 0.915


def test_interval_covers_the_mean_of_an_ar1_series() -> None:
    x = _ar1(2000, 250, 0.5, np.random.default_rng(4))
    covered = np.mean([(r := mean_inference(row)).ci_low <= 0 <= r.ci_high for row in x])
    assert 0.92 <= covered <= 0.975


def test_p_values_are_uniform_under_the_null() -> None:
    x = _ma(2000, 120, 10, np.random.default_rng(5))
    p = np.array([mean_inference(row, horizon=10).p for row in x])
    assert np.mean(p < 0.05) == pytest.approx(0.05, abs=0.025)
    assert np.mean(p < 0.5) == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize(("x", "defined"), [([], []), ([0.05], ["mean"]), ([0.05, 0.05, 0.05], ["mean", "se"])])
def test_mean_inference_is_nan_where_undefined(x: list[float], defined: list[str]) -> None:
    out = mean_inference(x)
    assert out.n == len(x)
    for key in ("mean", "se", "t", "p", "ci_low", "ci_high"):
        assert math.isnan(getattr(out, key)) == (key not in defined), key
    assert math.isnan(newey_west_se(x, 0)) == (len(x) < 2)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mean_inference([0.1, np.nan, 0.2]), "NaN"),
        (lambda: mean_inference([0.1, 0.2, 0.3], lag=3), "lag"),
        (lambda: newey_west_se([0.1, 0.2], -1), "lag"),
        (lambda: mean_inference(np.zeros((2, 3))), "1-D"),
        (lambda: overlap_lag(0, 100), "horizon"),
        (lambda: paired_difference([0, 0], [1.0, 2.0], [0], [1.0]), "more than once"),
        (lambda: paired_difference([0.0, 1.0], [1.0, 2.0], [0], [1.0]), "integer"),
        (lambda: block_bootstrap_ratio([1.0, 2.0], [1.0], 1), "aligned"),
        (lambda: block_bootstrap_ratio([1.0, 2.0], [1.0, 2.0], 3), "block"),
    ],
)
def test_bad_input_fails_loudly(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_paired_difference_aligns_by_day_id_not_position() -> None:
    rng = np.random.default_rng(6)
    a = rng.standard_normal(300).cumsum()  # a random walk: a[t] and a[t + 5] differ a lot
    noise = 0.01 * rng.standard_normal(300)
    days_a = np.arange(300)
    days_b = np.arange(5, 305)  # b shares days 5..299 with a and has 5 of its own
    b = np.append(a[5:], rng.standard_normal(5)) + noise
    order = rng.permutation(300)  # any row order in
    out = paired_difference(days_a[order], a[order], days_b, b, horizon=1)
    np.testing.assert_array_equal(out.days, np.arange(5, 300))
    np.testing.assert_allclose(out.difference, -noise[:295], rtol=0, atol=1e-12)
    assert (out.n_only_a, out.n_only_b, out.inference.n) == (5, 5, 295)
    assert out.inference.mean == pytest.approx(-noise[:295].mean(), rel=1e-9)
    assert out.inference.lag == overlap_lag(1, 295)


def test_paired_difference_detects_a_small_edge_that_unpaired_errors_hide() -> None:
    rng = np.random.default_rng(7)
    market = _ma(1, 500, 5, rng)[0] * 0.02  # what both forecasts share
    a = 0.05 + market + 0.005 * rng.standard_normal(500)
    b = 0.048 + market + 0.005 * rng.standard_normal(500)
    days = np.arange(500)
    paired = paired_difference(days, a, days, b, horizon=5).inference
    assert paired.t > 2  # a beats b by more than 2 standard errors of the difference
    unpaired_se = math.hypot(mean_inference(a, horizon=5).se, mean_inference(b, horizon=5).se)
    assert (a.mean() - b.mean()) / unpaired_se < 1


def test_block_bootstrap_is_deterministic_given_the_seed() -> None:
    rng = np.random.default_rng(8)
    num, den = rng.normal(0.8, 1, 120), rng.normal(1, 1, 120)
    first = block_bootstrap_ratio(num, den, block=10, n_boot=300, seed=1)
    assert block_bootstrap_ratio(num, den, block=10, n_boot=300, seed=1) == first
    assert block_bootstrap_ratio(num, den, block=10, n_boot=300, seed=2) != first
    assert first.ratio == pytest.approx(num.mean() / den.mean(), rel=1e-12)
    assert first.ci_low < first.ratio < first.ci_high


def test_block_bootstrap_interval_covers_a_known_ratio() -> None:
    rng = np.random.default_rng(9)
    n, h, true_ratio = 250, 5, 0.8
    shared = _ma(300, n, h, rng) * 0.02  # overlap-correlated daily RankIC noise, shared by both series
    den = 0.05 + shared + 0.01 * _ma(300, n, h, rng)
    num = true_ratio * 0.05 + true_ratio * shared + 0.01 * _ma(300, n, h, rng)
    intervals = [block_bootstrap_ratio(nu, de, block=2 * h, n_boot=400, seed=s) for s, (nu, de) in
                 enumerate(zip(num, den, strict=True))]  # fmt: skip
    covered = np.mean([iv.ci_low <= true_ratio <= iv.ci_high for iv in intervals])
    assert 0.88 <= covered <= 0.99
    assert all(iv.n_nonpositive == 0 for iv in intervals)
    iid = [block_bootstrap_ratio(nu, de, block=1, n_boot=400, seed=0) for nu, de in zip(num[:50], den, strict=False)]
    assert np.median([iv.ci_high - iv.ci_low for iv in iid]) < np.median(
        [iv.ci_high - iv.ci_low for iv in intervals[:50]]
    )  # resampling single days ignores the overlap: too narrow


def test_sharpe_inference_reduces_to_lo_for_iid_normal_returns() -> None:
    r = np.random.default_rng(10).normal(0.0005, 0.01, size=50_000)
    out = sharpe_inference(r, 252, lag=0)
    assert out.sharpe == sharpe_ratio(r, 252)
    per_period = r.mean() / r.std(ddof=1)
    lo = math.sqrt((1 + per_period**2 / 2) / r.size) * math.sqrt(252)  # Lo (2002), iid normal returns
    assert out.se == pytest.approx(lo, rel=0.02)


def test_sharpe_inference_hand_example_is_the_delta_method() -> None:
    r = np.array([0.09, 0.01, 0.04, -0.02, 0.03])
    out = sharpe_inference(r, 4, lag=0)
    m1, m2 = r.mean(), (r**2).mean()
    sigma = math.sqrt(m2 - m1**2)
    grad = np.array([m2 / sigma**3, -m1 / (2 * sigma**3)])
    cov = np.cov(np.stack([r, r**2]), ddof=0)  # lag 0: the moments' plain covariance, divisor n
    var = grad @ cov @ grad / r.size / ((r.size - 1) / r.size)  # kappa = (n - 1)/n at lag 0
    assert out.se == pytest.approx(math.sqrt(var) * 2, rel=1e-10)  # sqrt(4 periods a year)
    assert out.t == pytest.approx(out.sharpe / out.se, rel=1e-12)


def test_sharpe_interval_covers_the_true_sharpe_of_autocorrelated_returns() -> None:
    phi, mu, n = 0.3, 0.1, 500
    x = _ar1(1000, n, phi, np.random.default_rng(11)) + mu
    true = mu / math.sqrt(1 / (1 - phi**2)) * math.sqrt(52)
    covered = np.mean([(s := sharpe_inference(row, 52)).ci_low <= true <= s.ci_high for row in x])
    assert 0.91 <= covered <= 0.98
    lo_iid = [math.sqrt((1 + (row.mean() / row.std()) ** 2 / 2) / n) * math.sqrt(52) for row in x]
    naive = np.mean([abs(sharpe_ratio(row, 52) - true) <= 1.96 * se for row, se in zip(x, lo_iid, strict=True)])
    assert naive < 0.9  # the iid error misses the autocorrelation


def test_sharpe_inference_is_nan_where_the_sharpe_is() -> None:
    for r in ([0.01], [0.01, 0.01, 0.01], [0.01, np.nan, 0.02]):
        out = sharpe_inference(r, 252)
        assert math.isnan(out.sharpe) and math.isnan(out.se) and math.isnan(out.t)
