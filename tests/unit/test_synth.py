"""The synthetic market: contract of the table, and the planted signal is there at the documented strength."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import kurtosis, rankdata

from atft.config import FeatureConfig, SynthConfig
from atft.data.features import build_panel
from atft.data.synth import ORACLE_FIT_COLUMNS, SynthMarket, generate, generate_prices, oracle_part_columns
from atft.errors import ConfigError

PRICES = ("open", "high", "low", "close", "volume")
TRAIN = range(624)  # the demo fold's training days on the default market (900 days, newest calendar year tested)


@dataclass(frozen=True)
class Grid:
    """Where each long row sits on the dense (date, stock) grid; stocks in sorted-symbol order."""

    day: np.ndarray
    stock: np.ndarray
    shape: tuple[int, int]

    def dense(self, values: np.ndarray) -> np.ndarray:
        out = np.full(self.shape, np.nan)
        out[self.day, self.stock] = values
        return out


def grid_of(table: pa.Table) -> Grid:
    dates, day = np.unique(table["date"].to_numpy(), return_inverse=True)
    symbols, stock = np.unique(table["symbol"].to_numpy(zero_copy_only=False), return_inverse=True)
    return Grid(day=day, stock=stock, shape=(len(dates), len(symbols)))


def row_return(table: pa.Table, grid: Grid, h: int) -> np.ndarray:
    """Simple return between a stock's row and its row h trading days later (h > 0) or earlier (h < 0)."""
    order = np.argsort(grid.stock, kind="stable")  # table is date-sorted, so each stock's rows stay in date order
    close, stock = table["close"].to_numpy()[order], grid.stock[order]
    lag = abs(h)
    same = stock[lag:] == stock[:-lag]
    ratio = np.full(len(close), np.nan)
    if h > 0:
        ratio[:-lag][same] = close[lag:][same] / close[:-lag][same] - 1.0
    else:
        ratio[lag:][same] = close[lag:][same] / close[:-lag][same] - 1.0
    out = np.empty_like(ratio)
    out[order] = ratio
    return grid.dense(out)


def mean_rank_ic(signal: np.ndarray, target: np.ndarray) -> float:
    """Mean over dates of the Spearman correlation across stocks, on dates with >= 10 valid pairs."""
    valid = ~(np.isnan(signal) | np.isnan(target))
    rows = valid.sum(axis=1) >= 10
    ranks = [rankdata(np.where(valid[rows], x[rows], np.nan), axis=1, nan_policy="omit") for x in (signal, target)]
    a, b = (r - np.nanmean(r, axis=1, keepdims=True) for r in ranks)
    ic = np.nansum(a * b, axis=1) / np.sqrt(np.nansum(a * a, axis=1) * np.nansum(b * b, axis=1))
    return float(ic.mean())


def cluster_peer_mean(values: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """(T, N) mean of ``values`` over the other members of each stock's cluster (NaN where the stock has none)."""
    members = np.eye(cluster.max() + 1)[cluster]  # (N, G)
    present = ~np.isnan(values)
    total = (np.where(present, values, 0.0) @ members)[:, cluster] - np.where(present, values, 0.0)
    count = (present @ members)[:, cluster] - present
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present & (count > 0), total / count, np.nan)


@pytest.fixture(scope="module")
def market() -> SynthMarket:
    return generate(SynthConfig())


@pytest.fixture(scope="module")
def big_clusters() -> SynthMarket:
    """Fewer sectors, so clusters of ~35 stocks whose peer average washes out idiosyncratic noise."""
    return generate(SynthConfig(n_stocks=600, n_days=600, n_sectors=5, seed=3))


def test_same_seed_same_table_and_another_seed_another() -> None:
    cfg = SynthConfig(n_stocks=40, n_days=150, seed=11)
    first, again = generate_prices(cfg), generate_prices(cfg)
    other = generate_prices(cfg.model_copy(update={"seed": 12}))
    assert first.equals(again)
    assert not np.allclose(first["close"].to_numpy()[:40], other["close"].to_numpy()[:40])


def test_prices_do_not_depend_on_the_number_of_extra_columns() -> None:
    with_extras = generate_prices(SynthConfig(n_stocks=40, n_days=150, n_extra=4))
    without = generate_prices(SynthConfig(n_stocks=40, n_days=150, n_extra=0))
    assert [c for c in with_extras.column_names if c.startswith("extra_")] == [f"extra_{j}" for j in range(4)]
    assert not any(c.startswith("extra_") for c in without.column_names)
    assert with_extras.drop_columns([f"extra_{j}" for j in range(4)]).equals(without)


def test_schema_order_and_keys(market: SynthMarket) -> None:
    table = market.table
    expected = [
        "date", "symbol", *PRICES, "sector", "market", "flow_imbalance",
        *(f"extra_{j}" for j in range(4)), *(c for h in (1, 5, 10, 20) for c in oracle_part_columns(h)),
        *ORACLE_FIT_COLUMNS,
    ]  # fmt: skip
    assert table.column_names == expected
    assert table.schema.field("date").type == pa.date32()
    assert all(table.schema.field(c).type == pa.string() for c in ("symbol", "sector", "market"))
    assert all(table.schema.field(c).type == pa.float64() for c in expected[2:] if c not in ("sector", "market"))
    dates = table["date"].to_numpy()
    assert dates[0] == np.datetime64("2018-01-01") and np.is_busday(np.unique(dates)).all()
    assert len(np.unique(dates)) == 900
    grid = grid_of(table)
    key = grid.day.astype(np.int64) * grid.shape[1] + grid.stock
    assert (np.diff(key) > 0).all(), "rows must be sorted by (date, symbol) with unique keys"
    assert table["symbol"][0].as_py() == "S0001"


def test_sector_and_market_are_static_labels(market: SynthMarket) -> None:
    table = market.table
    pairs = {(s, k, m) for s, k, m in zip(*(table[c].to_pylist() for c in ("symbol", "sector", "market")), strict=True)}
    assert len(pairs) == 300, "one sector and one market per symbol"
    assert {k for _, k, _ in pairs} == {f"SEC{k:02d}" for k in range(10)}
    assert {m for _, _, m in pairs} == {"PRIME", "GROWTH"}


def test_ohlcv_is_valid_and_volume_rises_with_moves(market: SynthMarket) -> None:
    o, h, lo, c, v = (market.table[k].to_numpy() for k in PRICES)
    assert not np.isnan(np.stack([o, h, lo, c, v])).any()
    assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()
    assert (lo > 0).all() and (v > 0).all()
    grid = grid_of(market.table)
    abs_move = np.abs(np.diff(np.log(grid.dense(c)), axis=0))
    log_volume = np.log(grid.dense(v))[1:]
    both = ~np.isnan(abs_move) & ~np.isnan(log_volume)
    demeaned = log_volume - np.nanmean(log_volume, axis=0)  # volume levels differ a lot between stocks
    assert np.corrcoef(abs_move[both], demeaned[both])[0, 1] > 0.1


def test_missing_values_only_in_some_extra_columns(market: SynthMarket) -> None:
    table = market.table
    missing = {c: np.isnan(table[c].to_numpy()).mean() for c in table.column_names[2:] if c not in ("sector", "market")}
    assert {c for c, share in missing.items() if share > 0} <= {f"extra_{j}" for j in range(4)}
    assert sum(0.01 < share < 0.1 for share in missing.values()) >= 2


def test_listing_gaps_late_starts_early_ends_and_suspensions(market: SynthMarket) -> None:
    grid = grid_of(market.table)
    listed = ~np.isnan(grid.dense(np.ones(len(grid.day))))
    first = listed.argmax(axis=0)
    last = grid.shape[0] - 1 - listed[::-1].argmax(axis=0)
    rows = listed.sum(axis=0)
    late, early, gapped = first > 0, last < grid.shape[0] - 1, rows < last - first + 1
    assert late.sum() >= 5 and early.sum() >= 5 and gapped.sum() >= 3
    assert 0.08 <= (rows < grid.shape[0]).mean() <= 0.25
    assert rows.min() >= 60, "every stock keeps a usable history"


def fold_oracle(market: SynthMarket, h: int, listed: np.ndarray) -> np.ndarray:
    """(T, N) the h-day oracle with its coefficients fitted on the demo fold's training days, NaN off listing."""
    return np.where(listed, market.oracle(h, market.fit_news(TRAIN)), np.nan)


def listed_of(grid: Grid) -> np.ndarray:
    return ~np.isnan(grid.dense(np.ones(len(grid.day))))


def test_oracle_rank_ic_is_weak_but_real(market: SynthMarket) -> None:
    table, grid = market.table, grid_of(market.table)
    listed = listed_of(grid)
    ic = {h: mean_rank_ic(fold_oracle(market, h, listed), row_return(table, grid, h)) for h in (1, 5, 20)}
    assert 0.05 <= ic[5] <= 0.2
    assert 0.02 < ic[1] < ic[5] < 0.2 and 0.02 < ic[20] < 0.25


def test_oracle_is_the_observable_forecast_below_the_latent_one(market: SynthMarket) -> None:
    """The oracle filters what the table shows: it beats each observable part alone, and falls short of the
    forecast that saw the hidden states by the noise no model could remove."""
    table, grid = market.table, grid_of(market.table)
    target = row_return(table, grid, 5)
    listed = listed_of(grid)
    oracle = fold_oracle(market, 5, listed)
    latent = np.where(listed, market.latent_forecast(5), np.nan)
    flow = grid.dense(table["flow_imbalance"].to_numpy())
    peers = cluster_peer_mean(row_return(table, grid, -5), market.cluster)
    ic = {name: mean_rank_ic(x, target) for name, x in (("oracle", oracle), ("latent", latent), ("flow", flow))}
    ic["peers"] = mean_rank_ic(peers, target)
    assert ic["oracle"] > max(ic["flow"], ic["peers"]) + 0.01, ic
    assert 0.6 * ic["latent"] < ic["oracle"] < 0.95 * ic["latent"], ic
    day_corr = [np.corrcoef(o[v], x[v])[0, 1] for o, x, v in zip(oracle, latent, listed, strict=True) if v.sum() > 10]
    assert 0.75 < np.mean(day_corr) < 0.95


def test_the_table_holds_the_oracle_in_parts(market: SynthMarket) -> None:
    table, grid = market.table, grid_of(market.table)
    own_col, z_col, zbar_col = oracle_part_columns(10)
    own, lead_lag = market.own_part(10), market.lead_lag_components(10)
    np.testing.assert_array_equal(table[own_col].to_numpy(), own[grid.day, grid.stock])
    np.testing.assert_array_equal(table[z_col].to_numpy(), lead_lag[grid.day, grid.stock, 0])
    np.testing.assert_array_equal(table[zbar_col].to_numpy(), lead_lag[grid.day, grid.stock, 1])
    first_member = np.unique(market.cluster, return_index=True)[1][market.cluster]  # (N,)
    assert np.array_equal(lead_lag, lead_lag[:, first_member]), "a cluster shares its lead-lag part"
    assert not np.array_equal(own, own[:, first_member]), "the own part is each stock's"
    news = table["oracle_fit_news"].to_numpy()
    np.testing.assert_array_equal(news, market.news[grid.day, market.cluster[grid.stock]])


def test_the_news_fit_on_the_table_rows_of_training_days_matches_the_generators(market: SynthMarket) -> None:
    """Fitted over the table's rows (a cluster-day weighted by its listed members) or over (day, cluster) cells,
    (b1, b2) agree, and a fit on the training days alone forecasts as well as one on every day."""
    table, grid = market.table, grid_of(market.table)
    fit = np.stack([table[c].to_numpy() for c in ORACLE_FIT_COLUMNS], axis=1)
    rows = grid.day < TRAIN.stop
    from_rows = np.linalg.lstsq(fit[rows, 1:], fit[rows, 0], rcond=None)[0]
    from_cells, every_day = market.fit_news(TRAIN), market.fit_news(range(grid.shape[0]))
    np.testing.assert_allclose(from_rows, from_cells, rtol=0.05)
    assert from_cells[0] > 0 > from_cells[1], "z reveals the cluster's news; zbar removes the sector's shock"
    listed, target = listed_of(grid), row_return(table, grid, 5)
    test_days = slice(TRAIN.stop + 160, None)  # the demo fold's test year
    fold = mean_rank_ic(fold_oracle(market, 5, listed)[test_days], target[test_days])
    everything = mean_rank_ic(np.where(listed, market.oracle(5, every_day), np.nan)[test_days], target[test_days])
    assert fold == pytest.approx(everything, abs=0.003)


def test_no_oracle_column_becomes_a_feature() -> None:
    """The feature builder passes every oracle_* column through untouched, and builds the same features with or
    without them: a model never sees the oracle's parts or the hidden news."""
    prices = generate_prices(SynthConfig(n_stocks=40, n_days=150), horizons=(1, 5))
    oracle = [c for c in prices.column_names if c.startswith("oracle_")]
    assert len(oracle) == 2 * 3 + 3
    panel = build_panel(prices, FeatureConfig(), (1, 5))
    assert not [c for c in panel.column_names if "oracle" in c and not c.startswith("oracle_")]
    for c in oracle:
        np.testing.assert_array_equal(panel[c].to_numpy(), prices[c].to_numpy().astype(np.float32))
    without = build_panel(prices.drop_columns(oracle), FeatureConfig(), (1, 5))
    assert panel.drop_columns(oracle).schema == without.schema
    for c in without.column_names:
        a, b = panel[c].to_numpy(zero_copy_only=False), without[c].to_numpy(zero_copy_only=False)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), c


def test_flow_imbalance_predicts_and_extras_do_not(market: SynthMarket) -> None:
    table, grid = market.table, grid_of(market.table)
    target = row_return(table, grid, 5)
    assert mean_rank_ic(grid.dense(table["flow_imbalance"].to_numpy()), target) > 0.03
    for j in range(4):
        assert abs(mean_rank_ic(grid.dense(table[f"extra_{j}"].to_numpy()), target)) < 0.02


def test_cluster_peers_predict_better_than_own_past(big_clusters: SynthMarket) -> None:
    table, grid = big_clusters.table, grid_of(big_clusters.table)
    own = row_return(table, grid, -5)
    peers = cluster_peer_mean(own, big_clusters.cluster)
    target = row_return(table, grid, 5)
    own_ic, peer_ic = mean_rank_ic(own, target), mean_rank_ic(peers, target)
    assert peer_ic > 0.05
    assert peer_ic > own_ic + 0.015, (peer_ic, own_ic)


def test_cluster_members_are_visible_in_trailing_correlation(market: SynthMarket) -> None:
    grid = grid_of(market.table)
    log_return = np.diff(np.log(grid.dense(market.table["close"].to_numpy())), axis=0)
    same = market.cluster[:, None] == market.cluster[None, :]
    np.fill_diagonal(same, False)
    medians = []
    for end in range(60, len(log_return), 120):
        window = log_return[end - 60 : end]
        full = ~np.isnan(window).any(axis=0)
        corr = np.corrcoef(window[:, full].T)
        medians.append((np.median(corr[same[np.ix_(full, full)]]), np.median(corr[~same[np.ix_(full, full)]])))
    within, outside = np.array(medians).T
    assert np.median(within) >= 0.3
    assert (within > outside + 0.1).all()


def test_returns_have_fat_tails_and_volatility_clustering(market: SynthMarket) -> None:
    grid = grid_of(market.table)
    log_return = np.diff(np.log(grid.dense(market.table["close"].to_numpy())), axis=0)
    standardised = log_return / np.nanstd(log_return, axis=0)
    assert kurtosis(standardised[~np.isnan(standardised)]) > 1.0
    size = np.abs(standardised)
    both = ~np.isnan(size[1:]) & ~np.isnan(size[:-1])
    assert np.corrcoef(size[1:][both], size[:-1][both])[0, 1] > 0.05


def test_larger_universe_keeps_the_contract() -> None:
    table = generate_prices(SynthConfig(n_stocks=1000, n_days=300, n_extra=0), horizons=(2, 7))
    grid = grid_of(table)
    assert grid.shape == (300, 1000)
    assert 0.85 * 300_000 < table.num_rows <= 300_000
    assert table["symbol"].to_numpy(zero_copy_only=False).max() == "S1000"
    assert [c for c in table.column_names if c.startswith("oracle_")] == [
        *oracle_part_columns(2),
        *oracle_part_columns(7),
        *ORACLE_FIT_COLUMNS,
    ]


@pytest.mark.parametrize("horizons", [(), (0, 5), (5, 5)])
def test_bad_horizons_are_rejected(horizons: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match="horizons"):
        generate_prices(SynthConfig(n_stocks=10, n_days=120), horizons=horizons)
