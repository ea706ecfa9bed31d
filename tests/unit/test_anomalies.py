"""Anomalies of real price files are named with their first occurrence, never silently fixed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from atft.config import FeatureConfig
from atft.data.anomalies import price_anomalies
from atft.data.features import build_panel

DATES = np.arange(np.datetime64("2021-01-04"), np.datetime64("2021-01-04") + 6)
SYMBOLS = ["A", "B", "C"]


def _clean() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ret = np.full((6, 3), 0.01)
    ret[0] = np.nan  # no return on the first day
    return ret, np.ones((6, 3), dtype=bool), np.full((6, 3), 1000.0)


def test_clean_prices_raise_nothing() -> None:
    assert price_anomalies(*_clean(), DATES, SYMBOLS, min_stocks=3, clip=5.0) == []


def test_each_anomaly_is_counted_and_its_first_occurrence_named() -> None:
    ret, present, volume = _clean()
    ret[3, 1], ret[4, 2] = 0.8, -0.6  # two moves beyond +-50%
    volume[2, 0] = 0.0
    present[2:4, 2], ret[2:4, 2] = False, np.nan  # C skips two days
    found = price_anomalies(ret, present, volume, DATES, SYMBOLS, min_stocks=3, clip=5.0)
    assert len(found) == 4
    assert found[0].startswith("daily returns: 2 move(s) beyond +-50%, first B on 2021-01-07 (+80.0%)")
    assert found[1].startswith("volume: 1 row(s) with zero volume, first A on 2021-01-06")
    assert found[2].startswith("gaps: 1 stock(s) skip 2 trading day(s) between their first and last row, first C on")
    assert found[3].startswith(
        "thin days: 2 date(s) with fewer than data.min_stocks_per_day=3 stocks, first 2021-01-06"
    )


def test_a_stock_listed_late_or_delisted_early_is_no_gap() -> None:
    ret, present, volume = _clean()
    present[:2, 0] = present[4:, 1] = False
    assert not any(w.startswith("gaps") for w in price_anomalies(ret, present, volume, DATES, SYMBOLS, 2, 5.0))


def test_the_builder_reports_them_by_file_name(caplog: pytest.LogCaptureFixture) -> None:
    close = np.array([[100, 100, 100], [101, 99, 100], [202, 98, 101], [203, 97, 102]], dtype=float)
    day, stock = np.meshgrid(np.arange(4), np.arange(3), indexing="ij")
    prices = pa.table(
        {
            "date": pa.array(DATES[day.ravel()].astype("datetime64[D]"), pa.date32()),
            "symbol": [SYMBOLS[s] for s in stock.ravel()],
            "close": close.ravel(),
            "volume": np.where(day.ravel() == 1, 0.0, 1e4),
        }
    )
    with caplog.at_level("WARNING"):
        build_panel(prices, FeatureConfig(), [1], source="p.csv", min_stocks_per_day=2)
    messages = [r.getMessage() for r in caplog.records]
    assert any("p.csv: daily returns: 1 move(s) beyond +-50%, first A on 2021-01-06 (+100.0%)" in m for m in messages)
    assert any("p.csv: volume: 3 row(s) with zero volume" in m for m in messages)
