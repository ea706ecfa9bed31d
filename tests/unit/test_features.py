"""The feature builder: long prices -> the panel of docs/panel-format.md, without look-ahead."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from atft.config import FeatureConfig
from atft.data.features import build_panel, feature_names, skipped_features
from atft.data.rolling import robust_zscore, rolling_max, rolling_min, rolling_std, rolling_sum
from atft.errors import DataContractError
from atft.runs.files import read_table

N_STOCKS, N_DAYS, HORIZONS = 60, 200, (1, 5)
WARM_UP = 61  # the longest window (60 days of returns) is full from here on
DELISTED, LAST_DAY = 7, 150  # stock 7 has no rows after day 150
CFG = FeatureConfig()


def make_prices(n_stocks: int = N_STOCKS, n_days: int = N_DAYS, seed: int = 0) -> pa.Table:
    """Random walks with a market factor, OHLCV, sectors, an extra column, an oracle, gaps and a delisting."""
    rng = np.random.default_rng(seed)
    mkt = rng.normal(0, 0.01, n_days)
    log_ret = rng.uniform(0.5, 1.5, n_stocks) * mkt[:, None] + rng.normal(0, 0.02, (n_days, n_stocks))
    close = 20 * np.exp(np.cumsum(log_ret, axis=0)) * rng.uniform(1, 10, n_stocks)
    opened = close * np.exp(rng.normal(0, 0.005, close.shape))
    high = np.maximum(opened, close) * np.exp(np.abs(rng.normal(0, 0.01, close.shape)))
    low = np.minimum(opened, close) * np.exp(-np.abs(rng.normal(0, 0.01, close.shape)))
    present = rng.random(close.shape) > 0.02  # a few missing rows
    present[LAST_DAY + 1 :, DELISTED] = False
    day, stock = np.nonzero(present)
    dates = np.datetime64("2021-01-04") + np.arange(n_days)
    return pa.table(
        {
            "date": pa.array(dates[day]),
            "symbol": pa.array([f"S{i:03d}" for i in stock]),
            "open": opened[day, stock],
            "high": high[day, stock],
            "low": low[day, stock],
            "close": close[day, stock],
            "volume": rng.lognormal(12, 0.7, close.shape).round()[day, stock],
            "sector": pa.array([f"sec{i % 6}" for i in stock]),
            "market": pa.array(["main" if i % 3 else "growth" for i in stock]),
            "flow": rng.normal(size=close.shape)[day, stock],
            "oracle_5d": rng.normal(0, 0.01, close.shape)[day, stock],
        }
    )


def wide(table: pa.Table, column: str) -> np.ndarray:
    """[D, N] of ``column``, NaN where a stock has no row (dates and codes in sorted order)."""
    dates, date_idx = np.unique(table["date"].to_numpy(), return_inverse=True)
    name = "code" if "code" in table.column_names else "symbol"
    codes, code_idx = np.unique(table[name].to_numpy(zero_copy_only=False), return_inverse=True)
    out = np.full((len(dates), len(codes)), np.nan)
    out[date_idx, code_idx] = table[column].to_numpy()
    return out


@pytest.fixture(scope="module")
def prices() -> pa.Table:
    return make_prices()


@pytest.fixture(scope="module")
def panel(prices: pa.Table) -> pa.Table:
    return build_panel(prices, CFG, HORIZONS)


def test_panel_follows_the_format(prices: pa.Table, panel: pa.Table) -> None:
    assert panel.schema.metadata == {b"atft.schema_version": b"1"}
    assert panel.num_rows == prices.num_rows
    assert panel.schema.field("date").type == pa.date32()
    for name in ("code", "sector", "market"):
        assert panel.schema.field(name).type == pa.string()
    floats = [c for c in panel.column_names if c.startswith(("feat_", "mkt_", "target_", "return_", "oracle_"))]
    assert all(panel.schema.field(c).type == pa.float32() for c in floats)
    assert len(floats) == panel.num_columns - 4
    feats = [c for c in panel.column_names if c.startswith("feat_")]
    assert len(feats) >= 30 and "feat_x_flow" in feats
    assert len([c for c in panel.column_names if c.startswith("mkt_")]) >= 6
    assert [f"target_{h}d" for h in HORIZONS] == [c for c in panel.column_names if c.startswith("target_")]
    keys = pa.table({"date": panel["date"], "code": panel["code"]})
    order = pc.sort_indices(keys, sort_keys=[("date", "ascending"), ("code", "ascending")])
    assert np.array_equal(order.to_numpy(), np.arange(panel.num_rows))
    assert keys.group_by(["date", "code"]).aggregate([]).num_rows == panel.num_rows
    assert np.array_equal(wide(panel, "oracle_5d"), wide(prices, "oracle_5d").astype(np.float32), equal_nan=True)


def test_every_feature_varies_across_stocks(panel: pa.Table) -> None:
    for name in (c for c in panel.column_names if c.startswith("feat_")):
        x = wide(panel, name)[WARM_UP:]
        std = np.nanstd(x, axis=1)
        assert np.mean(std > 0) >= 0.9, f"{name}: constant across stocks on too many dates"


def test_robust_z_is_centred_and_clipped_per_date(panel: pa.Table) -> None:
    for name in (c for c in panel.column_names if c.startswith("feat_")):
        x = wide(panel, name)[WARM_UP:]
        assert np.nanmax(np.abs(np.nanmedian(x, axis=1))) < 1e-5, name
        assert np.nanmax(np.abs(x)) <= CFG.clip


def test_market_context_is_the_same_for_every_stock(panel: pa.Table) -> None:
    for name in (c for c in panel.column_names if c.startswith("mkt_")):
        x = wide(panel, name)
        x = x[WARM_UP:]
        assert np.isfinite(x).any(axis=1).all(), name
        assert np.all(np.nanmax(x, axis=1) == np.nanmin(x, axis=1)), name


def test_features_rank_like_their_formula(prices: pa.Table, panel: pa.Table) -> None:
    """The z-score is monotone per date, so each stock must sit where its hand-computed raw value puts it."""
    close = wide(prices, "close")
    ret = close[1:] / close[:-1] - 1
    t = 120
    window = ret[t - 60 : t]  # the 60 returns ending at day t
    market = np.nanmean(window, axis=1)  # equal weight over the stocks with a return that day
    beta = np.full(N_STOCKS, np.nan)
    for i in range(N_STOCKS):
        days = ~np.isnan(window[:, i])
        if days.sum() >= 40:
            beta[i] = np.polyfit(market[days], window[days, i], 1)[0]
    raw = {"feat_ret_20d": np.log(close[t] / close[t - 20]), "feat_beta_mkt_60d": beta}
    for name, value in raw.items():
        z = wide(panel, name)[t]
        both = ~np.isnan(value) & ~np.isnan(z) & (np.abs(z) < CFG.clip)
        assert both.sum() >= 50
        assert np.array_equal(np.argsort(value[both]), np.argsort(z[both])), name


def test_vol_scaled_returns_are_built_on_request_and_rank_like_their_formula(prices: pa.Table, panel: pa.Table) -> None:
    """Off by default; on, four more columns, each ordered per date as log return / (60-day vol * sqrt(k))."""
    assert not [c for c in panel.column_names if "per_vol" in c]
    scaled = build_panel(prices, FeatureConfig(vol_scaled_returns=True), HORIZONS)
    added = [c for c in scaled.column_names if c not in panel.column_names]
    assert added == [f"feat_ret_per_vol_{k}d" for k in (1, 5, 20, 60)]
    for name in panel.column_names:
        before, after = panel[name].to_numpy(zero_copy_only=False), scaled[name].to_numpy(zero_copy_only=False)
        assert np.array_equal(before, after, equal_nan=before.dtype.kind == "f"), name
    log_close = np.log(wide(prices, "close"))
    t = 150
    vol = np.nanstd(np.diff(log_close[t - 60 : t + 1], axis=0), axis=0, ddof=1)
    for k in (1, 5, 20, 60):
        raw = (log_close[t] - log_close[t - k]) / (vol * np.sqrt(k))
        z = wide(scaled, f"feat_ret_per_vol_{k}d")[t]
        both = np.isfinite(raw) & ~np.isnan(z) & (np.abs(z) < CFG.clip)
        assert both.sum() >= 45, k
        assert np.array_equal(np.argsort(raw[both]), np.argsort(z[both])), k
        plain = wide(panel, f"feat_ret_{k}d")[t]
        assert not np.array_equal(np.argsort(plain[both]), np.argsort(z[both])), "scaling must reorder stocks"


def test_long_memory_inputs_are_built_on_request_and_rank_like_their_formulas() -> None:
    """Off by default; on, four more columns, each ordered per date as its formula, NaN without enough history."""
    prices = make_prices(n_days=320)
    plain = build_panel(prices, CFG, HORIZONS)
    slow = build_panel(prices, FeatureConfig(long_memory=True), HORIZONS)
    added = [c for c in slow.column_names if c not in plain.column_names]
    assert added == ["feat_ret_120d", "feat_mom_250_20d", "feat_dd_high_250d", "feat_up_low_250d"]
    close = wide(prices, "close")
    t = 300
    window = close[t - 249 : t + 1]
    raws = {
        "ret_120d": np.log(close[t] / close[t - 120]),
        "mom_250_20d": np.log(close[t - 20] / close[t - 250]),
        "dd_high_250d": close[t] / np.nanmax(window, axis=0) - 1,
        "up_low_250d": close[t] / np.nanmin(window, axis=0) - 1,
    }
    for name, raw in raws.items():
        z = wide(slow, f"feat_{name}")[t]
        both = np.isfinite(raw) & ~np.isnan(z) & (np.abs(z) < CFG.clip)
        assert both.sum() >= 45, name
        assert np.array_equal(np.argsort(raw[both]), np.argsort(z[both])), name
        assert np.isnan(wide(slow, f"feat_{name}")[110]).all(), f"{name} needs more history than 110 days"


def test_targets_are_forward_returns_and_nan_without_a_row(prices: pa.Table, panel: pa.Table) -> None:
    close = wide(prices, "close")
    target = {h: wide(panel, f"target_{h}d") for h in HORIZONS}
    for h in HORIZONS:
        both = np.argwhere(~np.isnan(close[:-h]) & ~np.isnan(close[h:]))
        for t, i in both[:: len(both) // 6]:  # six rows spread over the panel
            assert target[h][t, i] == pytest.approx(float(close[t + h, i] / close[t, i] - 1), rel=1e-5)
        assert np.all(np.isnan(target[h][-h:])), "no label past the end of the panel"
        assert np.all(np.isnan(target[h][LAST_DAY - h + 1 : LAST_DAY + 1, DELISTED])), "no label across delisting"
        assert np.array_equal(np.isnan(target[h][:-h]), np.isnan(close[:-h]) | np.isnan(close[h:]))
        assert np.count_nonzero(target[h] == 0) == 0


def test_return_1d_is_raw_and_nan_across_a_missing_row(prices: pa.Table, panel: pa.Table) -> None:
    close = wide(prices, "close")
    ret = wide(panel, "return_1d")
    expected = close[1:] / close[:-1] - 1
    assert np.all(np.isnan(ret[0]))
    assert np.allclose(ret[1:], expected, rtol=1e-6, equal_nan=True)
    gap_day, gap_stock = np.argwhere(np.isnan(close[1:LAST_DAY]))[0] + (1, 0)
    assert np.isnan(ret[gap_day + 1, gap_stock]) and np.isnan(wide(panel, "feat_ret_1d")[gap_day + 1, gap_stock])


def test_no_look_ahead(prices: pa.Table, panel: pa.Table) -> None:
    """Scrambling every price after day t leaves every input value at dates <= t unchanged, bit for bit."""
    cutoff = prices["date"].to_numpy() > np.datetime64("2021-01-04") + np.timedelta64(120, "D")
    scale = np.where(cutoff, np.random.default_rng(5).uniform(0.5, 2.0, prices.num_rows), 1.0)
    columns = {c: prices[c] for c in prices.column_names}
    for name in ("open", "high", "low", "close", "volume"):
        columns[name] = pa.array(prices[name].to_numpy() * scale)
    rebuilt = build_panel(pa.table(columns), CFG, HORIZONS)
    past = ~cutoff[np.argsort(prices["date"].to_numpy(), kind="stable")]  # panel rows are sorted by date
    assert 0 < past.sum() < panel.num_rows
    for name in (c for c in panel.column_names if c.startswith(("feat_", "mkt_", "return_1d"))):
        before, after = panel[name].to_numpy(), rebuilt[name].to_numpy()
        assert np.array_equal(before[past], after[past], equal_nan=True), name
    assert not np.array_equal(panel["feat_ret_5d"].to_numpy()[~past], rebuilt["feat_ret_5d"].to_numpy()[~past])


def test_close_only_input_builds_the_close_features(prices: pa.Table, caplog: pytest.LogCaptureFixture) -> None:
    close_only = prices.select(["date", "symbol", "close"])
    with caplog.at_level(logging.WARNING, logger="atft.data.features"):
        out = build_panel(close_only, CFG, HORIZONS, source="close.csv")
    built = [c for c in out.column_names if c.startswith(("feat_", "mkt_"))]
    assert built == feature_names(close_only.column_names, CFG)
    assert len([c for c in built if c.startswith("feat_")]) >= 30
    skipped = skipped_features(close_only.column_names, CFG)
    assert skipped["feat_range_1d"] == ["high", "low"] and skipped["mkt_volume_ratio_20d"] == ["volume"]
    assert "feat_beta_sec_60d" in skipped and not set(skipped) & set(built)
    assert "close.csv" in caplog.text and "feat_gap_1d" in caplog.text
    assert set(out["sector"].to_pylist()) == {"UNKNOWN"}


def test_dates_as_text_or_timestamps_and_code_as_symbol(prices: pa.Table, panel: pa.Table) -> None:
    small = prices.slice(0, 3000)
    expected = build_panel(small, CFG, HORIZONS)
    as_text = _as_text(small)
    as_time = small.set_column(0, "date", small["date"].cast(pa.timestamp("ms")))
    renamed = small.rename_columns(["date", "code", *small.column_names[2:]])
    for variant in (as_text, as_time, renamed):
        got = build_panel(variant, CFG, HORIZONS)
        assert got.schema.equals(expected.schema, check_metadata=True)
        for name in expected.column_names:
            a, b = got[name].to_numpy(zero_copy_only=False), expected[name].to_numpy(zero_copy_only=False)
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name


def _as_text(prices: pa.Table) -> pa.Table:
    return prices.set_column(0, "date", pc.strftime(prices["date"], format="%Y-%m-%d"))


def _break(prices: pa.Table, column: str, row: int, value: object) -> pa.Table:
    values = prices[column].to_pylist()
    values[row] = value
    return prices.set_column(prices.column_names.index(column), column, pa.array(values, prices[column].type))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda t: _break(t, "close", 5, -1.0), "close: 1 row(s) with close <= 0"),
        (lambda t: _break(t, "close", 5, float("nan")), "close: 1 row(s) with close <= 0, non-finite"),
        (lambda t: _break(t, "low", 5, 1e9), "high: 1 row(s) with high < low"),
        (lambda t: _break(t, "high", 5, 1e-3), "high: 1 row(s) with high < max(open, close)"),
        (lambda t: _break(t, "volume", 5, -10.0), "volume: 1 row(s) with volume < 0"),
        (lambda t: pa.concat_tables([t, t.slice(9, 2)]), "date, symbol: 2 row(s) duplicated"),
        (lambda t: t.drop_columns(["close"]), "close: required column(s) missing"),
        (lambda t: _break(t, "sector", 5, "other"), "sector: 1 symbol(s) with more than one label"),
        (lambda t: _break(t, "symbol", 5, None), "symbol: 1 null(s); first at row 5"),
        (lambda t: t.set_column(5, "close", t["close"].cast(pa.string())), "close: type string is not numeric"),
        (lambda t: _break(_as_text(t), "date", 5, "2021-13-01"), "date: 1 value(s) not YYYY-MM-DD; first 2021-13-01"),
        (lambda t: _break(t, "date", 5, None), "date: 1 null(s); first at row 5"),
        (lambda t: t.append_column("target_5d", t["close"]), "target_5d: name reserved"),
    ],
)
def test_each_contract_violation_names_its_column(
    prices: pa.Table, change: Callable[[pa.Table], pa.Table], expected: str
) -> None:
    with pytest.raises(DataContractError) as caught:
        build_panel(change(prices), CFG, HORIZONS, source="prices.csv")
    assert caught.value.source == "prices.csv"
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems


def test_violations_are_reported_together_with_their_first_key(prices: pa.Table) -> None:
    broken = _break(_break(prices, "close", 70, 0.0), "volume", 3, -1.0)
    with pytest.raises(DataContractError) as caught:
        build_panel(broken, CFG, HORIZONS)
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == ["close", "low", "volume"]  # close 0 is also below the low
    assert f"first at date={prices['date'][70]}, symbol={prices['symbol'][70]}" in problems[0]
    with pytest.raises(DataContractError) as caught:
        build_panel(prices.drop_columns(["close"]), CFG, HORIZONS)
    assert "required: date, symbol (or code), close; present: date, symbol, open," in caught.value.problems[0]


def test_real_prices_go_through(real_prices: Path) -> None:
    prices = read_table(real_prices)
    out = build_panel(prices, CFG, HORIZONS, source=real_prices.name)
    assert out.num_rows == prices.num_rows == 6 * 2699
    assert len([c for c in out.column_names if c.startswith("feat_")]) >= 30
    assert "feat_x_adjusted" in out.column_names
    close, target = wide(prices, "close"), wide(out, "target_5d")
    assert target[1000, 2] == pytest.approx(close[1005, 2] / close[1000, 2] - 1, rel=1e-5)
    for name in (c for c in out.column_names if c.startswith(("feat_", "mkt_"))):
        x = out[name].to_numpy()[6 * WARM_UP :]
        assert np.isfinite(x).mean() > 0.9 and np.abs(x[np.isfinite(x)]).max() <= CFG.clip, name


def test_robust_zscore_falls_back_when_mad_is_zero() -> None:
    x = np.array([[1.0, 1.0, 1.0, 1.0, 5.0], [2.0, 2.0, 2.0, 2.0, 2.0], [0.0, 1.0, 2.0, 3.0, np.nan]])
    z = robust_zscore(x, clip=5.0)
    assert z[0, 4] == pytest.approx(4 / (1.2533 * 0.8))  # MAD 0: 1.2533 * mean |x - median|
    assert np.array_equal(z[0, :4], np.zeros(4)) and np.array_equal(z[1], np.zeros(5))  # constant date
    assert z[2, 0] == pytest.approx(-1.5 / 1.4826) and np.isnan(z[2, 4])


@pytest.mark.parametrize("window", [1, 2, 5, 20, 60])
def test_rolling_kernels_match_a_plain_loop(window: int) -> None:
    rng = np.random.default_rng(window)
    x = rng.normal(size=(130, 4)) * 1e3
    x[rng.random(x.shape) < 0.2] = np.nan
    need = max(2, -(-2 * window // 3))
    got = {"sum": rolling_sum(x, window), "max": rolling_max(x, window), "min": rolling_min(x, window)}
    std = rolling_std(x, window)
    for t in range(len(x)):
        block = x[max(0, t - window + 1) : t + 1]
        missing = np.isnan(block)
        enough = (~missing).sum(axis=0) >= need
        expected = {
            "sum": np.where(missing, 0.0, block).sum(axis=0),
            "max": np.where(missing, -np.inf, block).max(axis=0),
            "min": np.where(missing, np.inf, block).min(axis=0),
        }
        for name, value in expected.items():
            assert np.allclose(got[name][t], np.where(enough, value, np.nan), equal_nan=True), (name, t)
        for i in np.flatnonzero(enough):
            assert std[t, i] == pytest.approx(np.std(block[~missing[:, i], i], ddof=1), rel=1e-9)
        assert np.isnan(std[t, ~enough]).all()
