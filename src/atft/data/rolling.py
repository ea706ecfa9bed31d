"""The array side of the feature builder: NaN-aware causal kernels and the feature formulas built from them.

:mod:`atft.data.features` turns a price file into dense arrays and the arrays into the panel; this module is
the arithmetic in between. Arrays are dense ``[D, N]`` (dates x stocks) float64 with NaN where a stock has no
value. Every kernel is vectorised over stocks and causal: the value at row ``t`` depends on rows ``<= t``
only, bit for bit, so changing later prices cannot change it.

Rolling sums, maxima and minima use the van Herk / Gil-Werman block scheme: the time axis is cut into blocks
of the window length; a window ending at ``t`` is a suffix of one block plus a prefix of the next. That costs
O(D * N) whatever the window, and unlike differences of one long cumulative sum it never subtracts two large
running totals, so a single huge value (an illiquid day in Amihud's ratio) cannot wipe out the precision of
every later window.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

# 1.4826 * MAD and 1.2533 * mean absolute deviation both estimate the standard deviation of a normal sample.
_MAD_TO_SIGMA = 1.4826
_MEANAD_TO_SIGMA = 1.2533


def min_obs(window: int) -> int:
    """Observations a window needs before its statistic is defined: two thirds of it, at least 2."""
    return max(2, math.ceil(2 * window / 3))


def div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN (undefined, never inf) where ``den`` is 0."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _blocked(x: np.ndarray, window: int, ufunc: np.ufunc, fill: float) -> np.ndarray:
    """``ufunc`` reduced over the trailing ``window`` rows ending at each row (van Herk / Gil-Werman)."""
    days = x.shape[0]
    blocks = -(-(days + window - 1) // window)
    padded = np.full((blocks * window, *x.shape[1:]), fill)
    padded[window - 1 : window - 1 + days] = x  # padded row t + window - 1 holds x[t]
    shaped = padded.reshape(blocks, window, -1)
    prefix = ufunc.accumulate(shaped, axis=1).reshape(padded.shape)
    suffix = ufunc.accumulate(shaped[:, ::-1], axis=1)[:, ::-1].reshape(padded.shape)
    start = np.arange(days)  # the window ending at x[t] starts at padded row t
    end = start + window - 1
    out = ufunc(suffix[start], prefix[end])
    aligned = start % window == 0  # the window is exactly one block: the suffix already covers it
    out[aligned] = prefix[end[aligned]]
    return out


def rolling_count(x: np.ndarray, window: int) -> np.ndarray:
    """Non-NaN values in the trailing window (exact: integer cumulative sum)."""
    cum = np.cumsum(~np.isnan(x), axis=0, dtype=np.int32)
    out = cum.copy()
    out[window:] -= cum[:-window]
    return out


def rolling_sum(x: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    """Sum of the non-NaN values in the trailing window; NaN with fewer than ``min_periods`` of them."""
    need = min_obs(window) if min_periods is None else min_periods
    total = _blocked(np.where(np.isnan(x), 0.0, x), window, np.add, 0.0)
    total[rolling_count(x, window) < need] = np.nan
    return total


def rolling_mean(x: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    """Mean of the non-NaN values in the trailing window; NaN with fewer than ``min_periods`` of them."""
    return div(rolling_sum(x, window, min_periods), rolling_count(x, window))


def rolling_std(x: np.ndarray, window: int) -> np.ndarray:
    """Sample standard deviation (ddof=1) of the non-NaN values in the trailing window."""
    n = rolling_count(x, window).astype(float)
    mean = rolling_sum(x, window) / n
    var = div(rolling_sum(x * x, window) - n * mean * mean, n - 1)
    return np.sqrt(np.maximum(var, 0.0))  # rounding can leave -1e-20 where the true variance is 0


def rolling_max(x: np.ndarray, window: int) -> np.ndarray:
    """Largest non-NaN value in the trailing window; NaN with fewer than ``min_obs(window)`` values."""
    out = _blocked(x, window, np.fmax, np.nan)
    out[rolling_count(x, window) < min_obs(window)] = np.nan
    return out


def rolling_min(x: np.ndarray, window: int) -> np.ndarray:
    """Smallest non-NaN value in the trailing window; NaN with fewer than ``min_obs(window)`` values."""
    out = _blocked(x, window, np.fmin, np.nan)
    out[rolling_count(x, window) < min_obs(window)] = np.nan
    return out


def shift(x: np.ndarray, periods: int) -> np.ndarray:
    """Rows moved ``periods`` later in time (positive: lag, negative: lead), NaN where nothing moves in."""
    out = np.full_like(x, np.nan)
    if periods > 0:
        out[periods:] = x[:-periods]
    elif periods < 0:
        out[:periods] = x[-periods:]
    else:
        out[:] = x
    return out


def cross_mean(x: np.ndarray) -> np.ndarray:
    """Mean over stocks of the non-NaN values on each date ([D, N] -> [D])."""
    valid = ~np.isnan(x)
    return div(np.where(valid, x, 0.0).sum(axis=1), valid.sum(axis=1))


def group_mean(x: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Each stock's group mean of the non-NaN values on each date ([D, N] -> [D, N])."""
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(group[order]) != 0])
    valid = ~np.isnan(x[:, order])
    sums = np.add.reduceat(np.where(valid, x[:, order], 0.0), starts, axis=1)  # [D, S]
    counts = np.add.reduceat(valid.astype(np.int64), starts, axis=1)
    return div(sums, counts)[:, group]  # group ids are 0..S-1, so column s of [D, S] is group s


def rolling_regression(y: np.ndarray, x: np.ndarray, window: int) -> tuple[np.ndarray, ...]:
    """Trailing OLS of y on x over the days both exist: (beta, alpha per day, correlation, residual vol)."""
    both = ~np.isnan(y) & ~np.isnan(x)
    yy, xx = np.where(both, y, np.nan), np.where(both, x, np.nan)
    n = rolling_count(yy, window)
    mx, my = div(rolling_sum(xx, window), n), div(rolling_sum(yy, window), n)
    cov = div(rolling_sum(xx * yy, window), n) - mx * my
    var_x = div(rolling_sum(xx * xx, window), n) - mx * mx
    var_y = div(rolling_sum(yy * yy, window), n) - my * my
    beta = div(cov, var_x)
    corr = div(cov, np.sqrt(np.maximum(var_x * var_y, 0.0)))
    return beta, my - beta * mx, corr, np.sqrt(np.maximum(var_y - beta * cov, 0.0))


def rolling_skew(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing skewness (from the window's central moments) of the non-NaN values."""
    n = rolling_count(x, window)
    square = x * x
    m1, m2, m3 = (div(rolling_sum(power, window), n) for power in (x, square, square * x))
    var = np.maximum(m2 - m1 * m1, 0.0)
    return div(m3 - 3 * m1 * m2 + 2 * m1**3, var**1.5)


def _row_median(x: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median of the non-NaN values of each row (NaN sorts last); NaN for an empty row."""
    ordered = np.sort(x, axis=1)
    rows = np.arange(x.shape[0])
    low = ordered[rows, np.maximum(count - 1, 0) // 2]
    high = ordered[rows, count // 2 - (count == 0)]
    return np.where(count > 0, 0.5 * (low + high), np.nan)


def robust_zscore(x: np.ndarray, clip: float, block: int = 64) -> np.ndarray:
    """Cross-sectional robust z-score per row (date), clipped to ``[-clip, clip]``.

    ``z = (x - median) / (1.4826 * MAD)``, over the non-NaN values of the row. Where the MAD is 0 (more
    than half the stocks share a value) the scale is ``1.2533 * mean |x - median|``; where that is 0 too the
    row is constant and every present value gets ``z = 0``. NaN stays NaN. Rows go ``block`` at a time so the
    temporaries stay in cache.
    """
    out = np.empty_like(x)
    for start in range(0, x.shape[0], block):
        rows = x[start : start + block]
        count = np.count_nonzero(~np.isnan(rows), axis=1)
        median = _row_median(rows, count)[:, None]
        deviation = np.abs(rows - median)
        scale = _MAD_TO_SIGMA * _row_median(deviation, count)
        mean_dev = np.nansum(deviation, axis=1) / np.maximum(count, 1)
        scale = np.where(scale > 0, scale, _MEANAD_TO_SIGMA * mean_dev)[:, None]
        z = np.where(scale > 0, div(rows - median, scale), np.where(np.isnan(rows), np.nan, 0.0))
        out[start : start + block] = np.clip(z, -clip, clip)
    return out


def expanding_zscore(x: np.ndarray, clip: float, min_periods: int = 20) -> np.ndarray:
    """Standardise a per-date series over time with the mean and std of all values up to and including t.

    NaN before ``min_periods`` observations and where the history so far is constant; clipped to ``±clip``.
    """
    valid = ~np.isnan(x)
    # Moments about the first value (a constant from the past) keep a constant history at exactly 0 variance.
    first = x[valid][0] if valid.any() else 0.0
    values = np.where(valid, x - first, 0.0)
    n = np.cumsum(valid).astype(float)
    mean = np.cumsum(values) / np.maximum(n, 1)
    var = np.cumsum(values * values) / np.maximum(n, 1) - mean * mean
    z = div(x - first - mean, np.sqrt(np.maximum(var, 0.0)))
    z[n < min_periods] = np.nan
    return np.clip(z, -clip, clip)


# ---- The feature formulas. Each group yields its features in the order of its names (see STOCK_GROUPS). ----


@dataclass(frozen=True)
class Prices:
    """Dense ``[D, N]`` inputs of the feature groups (NaN where a stock has no row)."""

    close: np.ndarray
    open: np.ndarray | None
    high: np.ndarray | None
    low: np.ndarray | None
    volume: np.ndarray | None
    log_close: np.ndarray
    log_ret: np.ndarray  # log(close[t] / close[t-1])
    ret: np.ndarray  # close[t] / close[t-1] - 1: the daily return, also written as return_1d
    sector_ret: np.ndarray  # equal-weight mean of ret over the stock's sector
    mkt_ret: np.ndarray  # [D] equal-weight mean of ret over the stocks that have one

    def stocks(self, columns: slice) -> Prices:
        """The same inputs for a block of stocks (views; ``mkt_ret`` is shared)."""
        sliced = {k: v[:, columns] for k, v in vars(self).items() if v is not None and k != "mkt_ret"}
        return dataclasses.replace(self, **sliced)


def _returns(p: Prices) -> Iterator[np.ndarray]:
    """Log returns ``log(close[t] / close[t-k])``, k = 1, 2, 3, 5, 10, 20, 60."""
    for k in (1, 2, 3, 5, 10, 20, 60):
        yield p.log_close - shift(p.log_close, k)


def _vol_scaled_returns(p: Prices) -> Iterator[np.ndarray]:
    """Log returns over 1, 5, 20 and 60 days per unit of their expected spread, ``vol_60d * sqrt(k)``.

    A 3% day is news for a utility and noise for a biotech; a cross-sectional z-score of the raw return ranks
    them the other way round. Dividing by the stock's own trailing volatility first puts every move in units
    of that stock's risk, as time-series momentum and reversal signals are usually built.
    """
    vol = rolling_std(p.log_ret, 60)
    for k in (1, 5, 20, 60):
        yield div(p.log_close - shift(p.log_close, k), vol * math.sqrt(k))


def _long_memory(p: Prices) -> Iterator[np.ndarray]:
    """Six- and twelve-month trends: the 120-day log return, the 12-1 month return (from 250 to 20 days back,
    skipping the last month, whose reversal works the other way), and the distance from the 250-day high and low.

    Intermediate-horizon momentum and the distance from the 52-week high are the best-documented slow
    cross-sectional signals; the default inputs reach back 60 days at most.
    """
    yield p.log_close - shift(p.log_close, 120)
    yield shift(p.log_close, 20) - shift(p.log_close, 250)
    yield p.close / rolling_max(p.close, 250) - 1
    yield p.close / rolling_min(p.close, 250) - 1


def _volatility(p: Prices) -> Iterator[np.ndarray]:
    """Std of daily log returns over 5/20/60 days, 5/20 ratio, downside deviation, skew, extreme days."""
    r = p.log_ret
    vol = {w: rolling_std(r, w) for w in (5, 20, 60)}
    yield from vol.values()
    yield div(vol[5], vol[20])
    yield np.sqrt(rolling_mean(np.minimum(r, 0.0) ** 2, 20))  # downside semi-deviation
    yield rolling_skew(r, 20)
    yield rolling_max(r, 20)
    yield rolling_min(r, 20)


def _trend(p: Prices) -> Iterator[np.ndarray]:
    """Close vs moving averages, MA5 vs MA20, RSI-14, distance from the 20/60-day high and 20-day low."""
    c = p.close
    ma = {w: rolling_mean(c, w) for w in (5, 10, 20, 60)}
    for w in (5, 10, 20, 60):
        yield c / ma[w] - 1
    yield ma[5] / ma[20] - 1
    gain, loss = rolling_mean(np.maximum(p.log_ret, 0.0), 14), rolling_mean(np.maximum(-p.log_ret, 0.0), 14)
    yield 100 * div(gain, gain + loss)  # Cutler's RSI (simple means); undefined for a flat window
    yield c / rolling_max(c, 20) - 1
    yield c / rolling_max(c, 60) - 1
    yield c / rolling_min(c, 20) - 1


def _vs_market(p: Prices) -> Iterator[np.ndarray]:
    """60-day regression on the market return (beta, alpha, correlation, residual vol); mean excess return."""
    yield from rolling_regression(p.ret, p.mkt_ret[:, None], 60)
    excess = p.ret - p.mkt_ret[:, None]
    yield rolling_mean(excess, 5)
    yield rolling_mean(excess, 20)


def _vs_sector(p: Prices) -> Iterator[np.ndarray]:
    """60-day beta to the sector return; mean return in excess of the sector over 5 and 20 days."""
    yield rolling_regression(p.ret, p.sector_ret, 60)[0]
    excess = p.ret - p.sector_ret
    yield rolling_mean(excess, 5)
    yield rolling_mean(excess, 20)


def _range(p: Prices) -> Iterator[np.ndarray]:
    """(high - low) / close today and its 5-day mean, Parkinson vol over 20 days, close location value."""
    assert p.high is not None and p.low is not None  # guaranteed by the group's needs
    hl = (p.high - p.low) / p.close
    yield hl
    yield rolling_mean(hl, 5)
    yield np.sqrt(rolling_mean(np.log(p.high / p.low) ** 2, 20) / (4 * math.log(2)))  # Parkinson
    yield div((p.close - p.low) - (p.high - p.close), p.high - p.low)  # close location value


def _open(p: Prices) -> Iterator[np.ndarray]:
    """Overnight gap ``log(open / previous close)`` and intraday return ``log(close / open)``."""
    assert p.open is not None
    yield np.log(p.open) - shift(p.log_close, 1)  # overnight gap
    yield p.log_close - np.log(p.open)  # open to close


def _volume(p: Prices) -> Iterator[np.ndarray]:
    """Volume vs its 20-day mean, 5- vs 20-day mean, log dollar volume, log-volume z-score, Amihud."""
    assert p.volume is not None
    v, dollar = p.volume, p.volume * p.close
    ma20 = rolling_mean(v, 20)
    yield div(v, ma20)
    yield div(rolling_mean(v, 5), ma20)
    yield np.log1p(rolling_mean(dollar, 20))
    log_v = np.log1p(v)
    yield div(log_v - rolling_mean(log_v, 20), rolling_std(log_v, 20))
    yield rolling_mean(div(np.abs(p.ret), dollar), 20)  # Amihud illiquidity; undefined on zero-volume days


def _market_context(p: Prices) -> Iterator[np.ndarray]:
    """Per date: market return 1/5/20 days (log), its 20-day vol, cross-sectional dispersion, breadth."""
    rm = p.mkt_ret
    yield rm
    yield rolling_sum(np.log1p(rm), 5)
    yield rolling_sum(np.log1p(rm), 20)
    yield rolling_std(rm, 20)
    yield np.sqrt(cross_mean((p.ret - rm[:, None]) ** 2))  # dispersion of the daily returns
    yield div((p.ret > 0).sum(axis=1), (~np.isnan(p.ret)).sum(axis=1))  # breadth: share of stocks up


def _market_volume(p: Prices) -> Iterator[np.ndarray]:
    """Per date: mean over stocks of volume / its 20-day mean."""
    assert p.volume is not None
    yield cross_mean(div(p.volume, rolling_mean(p.volume, 20)))


@dataclass(frozen=True)
class Group:
    """Features built together from shared intermediates, and the input columns they need."""

    needs: frozenset[str]
    names: tuple[str, ...]
    build: Callable[[Prices], Iterator[np.ndarray]]


def _group(needs: str, names: str, build: Callable[[Prices], Iterator[np.ndarray]]) -> Group:
    return Group(frozenset(needs.split()), tuple(names.split()), build)


# Per-stock features (written as feat_<name>, robust-z-scored per date) and market context (mkt_<name>).
STOCK_GROUPS = (
    _group("", "ret_1d ret_2d ret_3d ret_5d ret_10d ret_20d ret_60d", _returns),
    _group(
        "",
        "vol_5d vol_20d vol_60d vol_ratio_5_20d downside_vol_20d skew_20d max_ret_20d min_ret_20d",
        _volatility,
    ),
    _group(
        "",
        "ma_gap_5d ma_gap_10d ma_gap_20d ma_gap_60d ma_cross_5_20d rsi_14d dd_high_20d dd_high_60d up_low_20d",
        _trend,
    ),
    _group("", "beta_mkt_60d alpha_mkt_60d corr_mkt_60d idio_vol_60d rs_mkt_5d rs_mkt_20d", _vs_market),
    _group("sector", "beta_sec_60d rs_sec_5d rs_sec_20d", _vs_sector),
    _group("high low", "range_1d range_5d parkinson_20d clv_1d", _range),
    _group("open", "gap_1d intraday_1d", _open),
    _group(
        "volume",
        "volume_ratio_20d volume_ratio_5_20d log_dollar_vol_20d volume_z_20d amihud_20d",
        _volume,
    ),
)
# Built only with features.vol_scaled_returns (a candidate input, off by default): written after STOCK_GROUPS.
VOL_SCALED_RETURNS = _group("", "ret_per_vol_1d ret_per_vol_5d ret_per_vol_20d ret_per_vol_60d", _vol_scaled_returns)
# Built only with features.long_memory (a candidate input, off by default): written after the groups above.
LONG_MEMORY = _group("", "ret_120d mom_250_20d dd_high_250d up_low_250d", _long_memory)
MARKET_GROUPS = (
    _group("", "ret_1d ret_5d ret_20d vol_20d dispersion_1d breadth_1d", _market_context),
    _group("volume", "volume_ratio_20d", _market_volume),
)
