r"""The embedded synthetic market: daily prices with a planted, documented and partly learnable signal.

Why it exists: a model trained on real prices cannot tell you whether a weak score means "nothing to learn"
or "the pipeline is broken". This market has a known answer. Its ``oracle_*`` columns hold, in parts, the best
forecast of the h-day return that the table's own data allow, so a run can be graded against the best any
model could do, and the signal is split so that each part of ATFT-GAT-FAN has something only it can find:

* an own, temporal signal observed with noise (``flow_imbalance``): a sequence model can filter it;
* a lead-lag signal that lives in *hidden* sub-industry clusters: a stock's own past returns reveal it only
  faintly, the average of its cluster peers' returns reveals it much better. The cluster is not a column;
  only the trailing-return correlation graph can find the peers;
* ``extra_*`` columns that look engineered but carry nothing: a model that leans on them is overfitting.

Model (stock i, sector k = k(i), hidden cluster g = g(i), daily log returns, t = business day)::

    r[i,t+1] = mu[i,t] + beta_i m[t+1] + a_i s[k,t+1] + d_i c[g,t+1] + NEWS eta[g,t+1] + e[i,t+1]
    mu[i,t]  = B_X x[i,t] + B_Y y[g,t]                                   planted drift, known at t
    x[i,t]   = PHI_X x[i,t-1] + sqrt(1 - PHI_X^2) u[i,t]                 own signal, stationary, var 1
    y[g,t]   = PHI_Y y[g,t-1] + sqrt(1 - PHI_Y^2) eta[g,t]               cluster signal, stationary, var 1
    flow_imbalance[i,t] = x[i,t] + FLOW_NOISE w[i,t]

``u, w, eta`` are iid N(0, 1). The cluster's news ``eta[g,t]`` moves every member on day t (``NEWS eta``, so
peers' recent returns reveal y) and keeps moving them afterwards through the drift ``B_Y y[g,t]`` (slow
diffusion of cluster news). Risk, all with Student-t(``DF``) shocks z scaled to unit variance (fat tails)::

    m[t] = sqrt(hm[t]) z[t],      hm[t] = (1-ALPHA_M-BETA_M) MKT_VOL^2 + ALPHA_M m[t-1]^2 + BETA_M hm[t-1]
    e[i,t] = sqrt(he[i,t]) z[i,t], he[i,t] = (1-ALPHA_E-BETA_E) vol_i^2 + ALPHA_E e[i,t-1]^2 + BETA_E he[i,t-1]
    s[k,t] = SECTOR_VOL rho[t] z[k,t],  c[g,t] = CLUSTER_VOL rho[t] z[g,t],  rho[t] = sqrt(hm[t]) / MKT_VOL

so volatility clusters (GARCH(1,1) for the market and each stock's idiosyncratic part) and sector and
cluster factors swell with the market's risk regime. Per stock: ``beta_i ~ clip(N(1, 0.25), 0.3, 1.8)``,
``a_i ~ U(0.6, 1.2)``, ``d_i ~ U(0.7, 1.3)``, ``vol_i = IDIO_VOL exp(0.3 N(0,1))``, x1.3 on GROWTH.
Each sector has 3 or 4 clusters of about equal size. A cluster's common daily shock is mostly its news
(``NEWS`` > ``CLUSTER_VOL``), so the co-movement that lets the graph find the peers is the same co-movement
that carries the signal. Members' trailing 60-day return correlation has a median of ~0.43 (about three in
four pairs >= 0.3); stocks in different sectors ~0.18.

The oracle is the best forecast a model could make from what the table shows: it knows the generator's
structure and parameters (and the hidden clusters) but not its hidden states, so, like a model, it sees x only
through ``flow_imbalance`` and y only through the cluster's returns. It filters both (the best linear
filters; a model that learnt the clusters from the graph and filtered as well would match it)::

    oracle_h[i,t] = B_X S_h(PHI_X) xhat[i,t] + B_Y S_h(PHI_Y) yhat[g,t],     S_h(phi) = (1 - phi^h) / (1 - phi)
    xhat[i,t] = PHI_X xhat[i,t-1] + K (flow_imbalance[i,t] - PHI_X xhat[i,t-1])    steady-state Kalman filter
    yhat[g,t] = PHI_Y yhat[g,t-1] + sqrt(1 - PHI_Y^2) etahat[g,t]
    etahat[g,t] = b1 z[g,t] + b2 zbar[k,t]

where ``z[g,t]`` is the cluster's inverse-variance-weighted mean of listed returns net of the day's mean, and
``zbar`` the mean of z over the sector's other clusters (it cancels the sector's shock); a stock's filter
updates only on its listed days. K is analytic; (b1, b2), the least-squares projection of the news eta on
(z, zbar), stand for what a forecaster that knew the parameters would compute, but are fitted on data, so on a
fold's training days only: the generator does not know the fold, so it writes the oracle in parts and
:mod:`atft.baselines.oracle` fits (b1, b2) per fold. The filter is linear (``yhat = b1 Z + b2 Zbar``, Z and Zbar
the same AR(1) filter of z and zbar), so per row the table holds (passed through the feature builder, never
model inputs)::

    oracle_own_<h>d            B_X S_h(PHI_X) xhat[i,t]   oracle_h = own + b1 * lead_lag_z + b2 * lead_lag_zbar
    oracle_lead_lag_z_<h>d     B_Y S_h(PHI_Y) Z[g,t]
    oracle_lead_lag_zbar_<h>d  B_Y S_h(PHI_Y) Zbar[g,t]
    oracle_fit_news, oracle_fit_z, oracle_fit_zbar    eta[g,t], z[g,t], zbar[k,t]: what (b1, b2) are fitted on

Fitted on the demo fold's 624 training days, the oracle's mean per-date RankIC with the realised forward return
over all days is about 0.056 / 0.096 / 0.103 / 0.094 for h = 1 / 5 / 10 / 20 on the default config (within
0.0002 of a fit on every day): weak, like a real market.
:meth:`SynthMarket.latent_forecast` is the forecast that knew x and y themselves (0.071 / 0.122 / 0.133 /
0.120; the two correlate about 0.84 per day): the gap is what no model can learn, as it was never in the data.

Listing: ~6% of stocks list late, ~6% delist early, ~4% have 1-3 suspensions of 1-10 days; rows exist
only on listed days (a suspended stock's price gaps by the returns it missed). Prices:
``close = 100 exp(level_i + sum r)`` from the listing day, ``open`` = previous close times an overnight gap
that carries part of r, ``high``/``low`` extend the open-close body by half-normal ranges scaled by the
stock's volatility, ``volume`` is lognormal and rises with |r| and volatility. ``extra_<j>``: even j are
quarterly-reported fundamentals (slow AR(1), held for 63 days, some stocks never report), odd j are daily
flows (AR(1), 5% of cells missing); missing values are nulls; all are independent of returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy.signal import lfilter

from atft.config import SynthConfig
from atft.errors import ConfigError

START_DATE = np.datetime64("2018-01-01", "D")
MARKETS = ("PRIME", "GROWTH")
GROWTH_SHARE, GROWTH_VOL_MULT = 0.3, 1.3

DF = 5.0  # Student-t degrees of freedom of every risk shock
MKT_VOL, ALPHA_M, BETA_M = 0.009, 0.07, 0.91
IDIO_VOL, ALPHA_E, BETA_E = 0.016, 0.05, 0.93
SECTOR_VOL, CLUSTER_VOL, NEWS = 0.004, 0.002, 0.010

PHI_X, B_X, FLOW_NOISE = 0.9, 0.0007, 0.8
PHI_Y, B_Y = 0.9, 0.0013

# listing kinds and their share of stocks (the rest trade every day)
ALWAYS, LATE, DELISTS, SUSPENDED = 0, 1, 2, 3
LATE_SHARE, DELIST_SHARE, SUSPEND_SHARE = 0.06, 0.06, 0.04
QUARTER = 63  # business days between fundamental reports
PRICE_COLUMNS = ("open", "high", "low", "close", "volume")


ORACLE_FIT_COLUMNS = ("oracle_fit_news", "oracle_fit_z", "oracle_fit_zbar")
"""Per row: the news of the stock's cluster that day and its two regressors; (b1, b2) are fitted on these."""


def oracle_part_columns(h: int) -> tuple[str, str, str]:
    """The h-day oracle's own part and its two lead-lag components: ``own + b1 * second + b2 * third``."""
    return f"oracle_own_{h}d", f"oracle_lead_lag_z_{h}d", f"oracle_lead_lag_zbar_{h}d"


@dataclass(frozen=True, eq=False)
class SynthMarket:
    """A generated market and its hidden parts, which are not in ``table`` and exist to grade the planted
    signal: ``cluster[i]`` is the hidden cluster of the i-th symbol in sorted order (``S0001`` first), ``x``
    (T, N) and ``y`` (T, G) the hidden states on the full (day, symbol) grid, ``x_hat`` the oracle's filtered
    estimate of x, ``news`` (T, G) the cluster news eta and ``regressors`` (T, G, 2) its observable proxies
    (z, zbar)."""

    table: pa.Table
    cluster: np.ndarray
    x: np.ndarray
    y: np.ndarray
    x_hat: np.ndarray
    news: np.ndarray
    regressors: np.ndarray

    def latent_forecast(self, h: int) -> np.ndarray:
        """(T, N) ``E[sum_{j=1..h} r[i,t+j] | x_t, y_t]``: what a forecaster that saw the hidden states would say."""
        return _own_part(h, self.x) + B_Y * _phi_sum(PHI_Y, h) * self.y[:, self.cluster]

    def own_part(self, h: int) -> np.ndarray:
        """(T, N) the oracle's own-signal part (``oracle_own_<h>d``); it has no fitted coefficient."""
        return _own_part(h, self.x_hat)

    def lead_lag_components(self, h: int) -> np.ndarray:
        """(T, N, 2) the lead-lag part's components (``oracle_lead_lag_z_<h>d``, ``oracle_lead_lag_zbar_<h>d``)."""
        return _lead_lag_components(h, self.regressors)[:, self.cluster]

    def fit_news(self, days: np.ndarray | range) -> np.ndarray:
        """(b1, b2): least squares of the news on (z, zbar) over every (day, cluster) cell of ``days``."""
        return _fit_news(self.news[days], self.regressors[days])

    def oracle(self, h: int, coef: np.ndarray) -> np.ndarray:
        """(T, N) the h-day oracle with lead-lag coefficients ``coef`` = (b1, b2), e.g. :meth:`fit_news` of a fold's
        training days."""
        return self.own_part(h) + self.lead_lag_components(h) @ coef


@dataclass(frozen=True, eq=False)
class _Universe:
    """Static per-stock draws, each shape (N,)."""

    sector: np.ndarray
    cluster: np.ndarray
    growth: np.ndarray
    beta: np.ndarray
    sector_load: np.ndarray
    cluster_load: np.ndarray
    idio_vol: np.ndarray
    n_sectors: int
    n_clusters: int


def generate_prices(cfg: SynthConfig, horizons: Sequence[int] = (1, 5, 10, 20)) -> pa.Table:
    """Long daily prices with the planted signal and the oracle's ``oracle_*`` columns (the module docstring)."""
    return generate(cfg, horizons).table


def generate(cfg: SynthConfig, horizons: Sequence[int] = (1, 5, 10, 20)) -> SynthMarket:
    """Generate the market; deterministic in ``cfg.seed``. Prices do not depend on ``cfg.n_extra``."""
    if not horizons or any(h < 1 for h in horizons) or len(set(horizons)) != len(horizons):
        raise ConfigError([f"horizons = {list(horizons)}: must be positive integers without repeats"])
    streams = np.random.default_rng(cfg.seed).spawn(6)
    n, t = cfg.n_stocks, cfg.n_days
    uni = _universe(streams[0], n, cfg.n_sectors)
    x = _ar1(streams[1].standard_normal((t, n)), PHI_X)
    eta = streams[1].standard_normal((t, uni.n_clusters))
    y = _ar1(eta, PHI_Y)  # (T, G)
    r, vol = _returns(streams[2], uni, B_X * x + B_Y * y[:, uni.cluster], NEWS * eta[:, uni.cluster])
    listed = _listing(streams[3], t, n)
    columns = _ohlcv(streams[4], uni, r, vol, listed)
    columns["flow_imbalance"] = x + FLOW_NOISE * streams[1].standard_normal((t, n))
    columns |= _extras(streams[5], t, n, cfg.n_extra)
    x_hat = _filter_flow(columns["flow_imbalance"], listed)
    regressors = _news_regressors(uni, r, listed)  # (T, G, 2)
    for h in horizons:
        own = _own_part(h, x_hat)
        lead_lag = _lead_lag_components(h, regressors)[:, uni.cluster]  # (T, N, 2)
        for name, values in zip(oracle_part_columns(h), (own, lead_lag[..., 0], lead_lag[..., 1]), strict=True):
            columns[name] = values
    fit_data = (eta, regressors[..., 0], regressors[..., 1])
    columns |= {name: v[:, uni.cluster] for name, v in zip(ORACLE_FIT_COLUMNS, fit_data, strict=True)}
    static = {
        "sector": np.array([f"SEC{k:02d}" for k in range(uni.n_sectors)])[uni.sector],
        "market": np.array(MARKETS)[uni.growth.astype(int)],
    }
    table = _assemble(listed, columns, static)
    return SynthMarket(table=table, cluster=uni.cluster, x=x, y=y, x_hat=x_hat, news=eta, regressors=regressors)


def _universe(rng: np.random.Generator, n: int, n_sectors: int) -> _Universe:
    """Sectors of about equal size, each split into 3 or 4 hidden clusters of about equal size."""
    sector = rng.permutation(np.arange(n) % n_sectors)
    per_sector = rng.integers(3, 5, size=n_sectors)
    first = np.concatenate([[0], np.cumsum(per_sector)[:-1]])  # global id of each sector's first cluster
    cluster = np.empty(n, dtype=np.int64)
    for k in range(n_sectors):  # a loop over sectors, not stocks
        members = np.flatnonzero(sector == k)
        cluster[members] = first[k] + rng.permutation(np.arange(len(members)) % per_sector[k])
    growth = rng.random(n) < GROWTH_SHARE
    return _Universe(
        sector=sector,
        cluster=cluster,
        growth=growth,
        beta=np.clip(rng.normal(1.0, 0.25, n), 0.3, 1.8),
        sector_load=rng.uniform(0.6, 1.2, n),
        cluster_load=rng.uniform(0.7, 1.3, n),
        idio_vol=IDIO_VOL * np.exp(0.3 * rng.standard_normal(n)) * np.where(growth, GROWTH_VOL_MULT, 1.0),
        n_sectors=n_sectors,
        n_clusters=int(per_sector.sum()),
    )


def _ar1(shocks: np.ndarray, phi: float) -> np.ndarray:
    """Stationary unit-variance AR(1) along axis 0 driven by unit ``shocks``: x0 = u0, x_t = phi x_{t-1} +
    sqrt(1 - phi^2) u_t."""
    scaled = shocks * np.sqrt(1.0 - phi**2)
    scaled[0] = shocks[0]
    return lfilter([1.0], [1.0, -phi], scaled, axis=0)


def _own_part(h: int, x: np.ndarray) -> np.ndarray:
    """(T, N) ``B_X S_h(PHI_X) x``: the h-day drift forecast's own-signal part from (an estimate of) the state x;
    analytic, nothing fitted."""
    return B_X * _phi_sum(PHI_X, h) * x


def _lead_lag_components(h: int, regressors: np.ndarray) -> np.ndarray:
    """(T, G, 2) ``B_Y S_h(PHI_Y)`` times the AR(1) filter of z and of zbar: the lead-lag part of the h-day
    forecast is their combination with the news coefficients (b1, b2), as the filter is linear."""
    return B_Y * _phi_sum(PHI_Y, h) * _ar1(regressors, PHI_Y)


def _fit_news(news: np.ndarray, regressors: np.ndarray) -> np.ndarray:
    """(b1, b2): least squares (no intercept) of ``news`` (...) on ``regressors`` (..., 2), cells flattened."""
    return np.linalg.lstsq(regressors.reshape(-1, 2), news.ravel(), rcond=None)[0]


def _phi_sum(phi: float, h: int) -> float:
    """S_h(phi) = 1 + phi + ... + phi^(h-1)."""
    return (1.0 - phi**h) / (1.0 - phi)


def _student_t(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Student-t(DF) draws scaled to unit variance."""
    return rng.standard_t(DF, size=shape) * np.sqrt((DF - 2.0) / DF)


def _garch(z: np.ndarray, target_var: np.ndarray, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1) shocks and conditional variances, both (T, n), from unit shocks ``z`` (T, n).

    The recursion runs over days; every step is vectorised over the n series.
    """
    omega = (1.0 - alpha - beta) * target_var
    shocks, variance = np.empty_like(z), np.empty_like(z)
    var_t = np.broadcast_to(target_var, z.shape[1:]).astype(float)
    for t in range(len(z)):
        variance[t] = var_t
        shocks[t] = np.sqrt(var_t) * z[t]
        var_t = omega + alpha * shocks[t] ** 2 + beta * var_t
    return shocks, variance


def _returns(
    rng: np.random.Generator, uni: _Universe, drift: np.ndarray, news: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Daily log returns (T, N) with ``drift[t]`` entering day t+1, and each stock's conditional daily vol."""
    n_days, n = drift.shape
    market, market_var = _garch(_student_t(rng, (n_days, 1)), np.array([MKT_VOL**2]), ALPHA_M, BETA_M)
    regime = np.sqrt(market_var) / MKT_VOL  # (T, 1): sector and cluster risk swell with the market's
    sector = SECTOR_VOL * regime * _student_t(rng, (n_days, uni.n_sectors))
    cluster = CLUSTER_VOL * regime * _student_t(rng, (n_days, uni.n_clusters))
    idio, idio_var = _garch(_student_t(rng, (n_days, n)), uni.idio_vol**2, ALPHA_E, BETA_E)
    r = (
        uni.beta * market
        + uni.sector_load * sector[:, uni.sector]
        + uni.cluster_load * cluster[:, uni.cluster]
        + news
        + idio
    )
    r[1:] += drift[:-1]
    return r, np.sqrt(uni.beta**2 * market_var + idio_var)


def _steady_state_gain(phi: float, noise_var: float) -> float:
    """Kalman gain of a unit-variance AR(1) seen through white noise of ``noise_var``, once the filter settles.

    The prior variance P solves ``P = phi^2 P R / (P + R) + q`` (q = 1 - phi^2, R = noise_var), a quadratic.
    """
    q, big_r = 1.0 - phi**2, noise_var
    b = big_r * (1.0 - phi**2) - q
    prior = (-b + np.sqrt(b * b + 4.0 * q * big_r)) / 2.0
    return float(prior / (prior + big_r))


def _filter_flow(flow: np.ndarray, listed: np.ndarray) -> np.ndarray:
    """(T, N) filtered own signal ``xhat``: the Kalman filter of x through ``flow_imbalance``, updated on listed
    days only (an unlisted day only decays the estimate). A loop over days, vectorised over stocks."""
    gain = _steady_state_gain(PHI_X, FLOW_NOISE**2)
    out, estimate = np.empty_like(flow), np.zeros(flow.shape[1])
    for t in range(len(flow)):
        prior = PHI_X * estimate
        estimate = np.where(listed[t], prior + gain * (flow[t] - prior), prior)
        out[t] = estimate
    return out


def _news_regressors(uni: _Universe, r: np.ndarray, listed: np.ndarray) -> np.ndarray:
    """(T, G, 2) (z, zbar): each cluster's news as its listed returns reveal it (the module docstring's formula),
    before the coefficients (b1, b2), which a fold fits on its training days."""
    weight = np.where(listed, 1.0 / uni.idio_vol**2, 0.0)  # (T, N)
    excess = np.where(listed, r - (r * listed).sum(1, keepdims=True) / listed.sum(1, keepdims=True), 0.0)
    members = np.eye(uni.n_clusters)[uni.cluster]  # (N, G)
    total_weight = weight @ members  # (T, G)
    z = np.divide((weight * excess) @ members, total_weight, out=np.zeros_like(total_weight), where=total_weight > 0)
    sector_of = np.zeros(uni.n_clusters, dtype=np.int64)
    sector_of[uni.cluster] = uni.sector
    in_sector = np.eye(uni.n_sectors)[sector_of]  # (G, K)
    others = (z @ in_sector)[:, sector_of] - z  # (T, G): sum of z over the sector's other clusters
    zbar = others / np.maximum(in_sector.sum(0)[sector_of] - 1.0, 1.0)
    return np.stack([z, zbar], axis=-1)


def _listing(rng: np.random.Generator, n_days: int, n: int) -> np.ndarray:
    """(T, N) mask of listed days: late listings, early delistings and short suspensions."""
    shares = [1.0 - LATE_SHARE - DELIST_SHARE - SUSPEND_SHARE, LATE_SHARE, DELIST_SHARE, SUSPEND_SHARE]
    kind = rng.choice([ALWAYS, LATE, DELISTS, SUSPENDED], size=n, p=shares)
    start = np.where(kind == LATE, rng.integers(n_days // 20, 3 * n_days // 5, n), 0)
    end = np.where(kind == DELISTS, rng.integers(2 * n_days // 5, 19 * n_days // 20, n), n_days)
    days = np.arange(n_days)[:, None]
    listed = (days >= start) & (days < end)
    suspended = np.flatnonzero(kind == SUSPENDED)
    stock = np.repeat(suspended, rng.integers(1, 4, size=len(suspended)))  # 1-3 episodes each
    begin = rng.integers(1, n_days - 10, size=len(stock))
    edges = np.zeros((n_days + 1, n), dtype=np.int64)
    np.add.at(edges, (begin, stock), 1)
    np.add.at(edges, (begin + rng.integers(1, 11, size=len(stock)), stock), -1)
    return listed & (np.cumsum(edges, axis=0)[:n_days] == 0)


def _ohlcv(
    rng: np.random.Generator, uni: _Universe, r: np.ndarray, vol: np.ndarray, listed: np.ndarray
) -> dict[str, np.ndarray]:
    """Open, high, low, close, volume (each (T, N)); close is ``100 exp(level_i)`` on the listing day."""
    n_days, n = r.shape
    log_close = np.cumsum(r, axis=0)
    first_day = np.argmax(listed, axis=0)
    log_close += rng.normal(0.0, 0.8, n) - log_close[first_day, np.arange(n)]
    close = 100.0 * np.exp(log_close)
    overnight = 0.35 * r + 0.25 * vol * rng.standard_normal((n_days, n))
    open_ = close * np.exp(overnight - r)
    high = np.maximum(open_, close) * np.exp(0.6 * vol * np.abs(rng.standard_normal((n_days, n))))
    low = np.minimum(open_, close) * np.exp(-0.6 * vol * np.abs(rng.standard_normal((n_days, n))))
    log_volume0 = rng.normal(np.log(3e5), 1.0, n) - 0.7 * uni.growth
    log_volume = (
        log_volume0
        + 0.8 * np.log(vol / np.median(vol, axis=0))
        + 0.35 * np.abs(r) / vol
        + 0.3 * rng.standard_normal((n_days, n))
    )
    return {"open": open_, "high": high, "low": low, "close": close, "volume": np.exp(log_volume)}


def _extras(rng: np.random.Generator, n_days: int, n: int, n_extra: int) -> dict[str, np.ndarray]:
    """Columns that look like fundamentals and flows but are independent of returns (no predictive power)."""
    columns: dict[str, np.ndarray] = {}
    for j in range(n_extra):
        level = rng.standard_normal(n)
        if j % 2 == 0:  # fundamental: slow, reported quarterly on a per-stock schedule, some never report
            path = level + 0.3 * _ar1(rng.standard_normal((n_days, n)), 0.995)
            offset = rng.integers(0, QUARTER, n)
            report_day = np.maximum((np.arange(n_days)[:, None] + offset) // QUARTER * QUARTER - offset, 0)
            value = np.take_along_axis(path, report_day, axis=0)
            value[:, rng.random(n) < 0.04] = np.nan
        else:  # flow: daily AR(1), some cells missing
            value = 0.5 * level + _ar1(rng.standard_normal((n_days, n)), 0.95)
            value[rng.random((n_days, n)) < 0.05] = np.nan
        columns[f"extra_{j}"] = 10.0 ** (j % 3) * value
    return columns


def _assemble(listed: np.ndarray, columns: dict[str, np.ndarray], static: dict[str, np.ndarray]) -> pa.Table:
    """Keep the listed cells of the (T, N) columns as long rows, sorted by date then symbol."""
    n_days, n = listed.shape
    day, stock = np.nonzero(listed)  # row-major: date-major, symbol-minor, i.e. already sorted
    width = max(4, len(str(n)))
    symbols = pa.array([f"S{i + 1:0{width}d}" for i in range(n)], pa.string())
    dates = pa.array(np.busday_offset(START_DATE, np.arange(n_days), roll="forward"), pa.date32())
    stock_idx = pa.array(stock)
    head = {"date": dates.take(pa.array(day)), "symbol": symbols.take(stock_idx)}
    prices = {k: pa.array(columns[k][listed]) for k in PRICE_COLUMNS}
    labels = {k: pa.array(v, pa.string()).take(stock_idx) for k, v in static.items()}
    # from_pandas: NaN becomes null, Arrow's (and Parquet's and CSV's) own "missing"
    rest = {k: pa.array(v[listed], from_pandas=True) for k, v in columns.items() if k not in PRICE_COLUMNS}
    return pa.table(head | prices | labels | rest)
