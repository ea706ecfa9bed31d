"""Builders of tiny, valid feature panels in the documented format (docs/panel-format.md)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

HORIZONS = [1, 5]


def make_panel_table(
    n_days: int = 40, n_stocks: int = 30, n_features: int = 4, seed: int = 0, drop: float = 0.05
) -> pa.Table:
    """A valid panel: random features with cross-sectional spread, weakly informative targets, a few missing rows."""
    rng = np.random.default_rng(seed)
    dates = np.arange(np.datetime64("2021-01-04"), np.datetime64("2021-01-04") + n_days)
    codes = np.array([f"C{i:03d}" for i in range(n_stocks)])
    day, stock = np.meshgrid(np.arange(n_days), np.arange(n_stocks), indexing="ij")
    keep = rng.random(day.shape) >= drop
    keep[:, :3] = True  # a few stocks always trade
    day, stock = day[keep], stock[keep]
    n = day.size
    columns: dict[str, object] = {
        "date": pa.array(dates[day].astype("datetime64[D]"), pa.date32()),
        "code": pa.array(codes[stock]),
        "sector": pa.array([f"S{i % 3}" for i in stock]),
        "market": pa.array(["PRIME" if i % 2 else "GROWTH" for i in stock]),
    }
    feats = rng.standard_normal((n, n_features)).astype(np.float32)
    for j in range(n_features):
        columns[f"feat_f{j}"] = pa.array(feats[:, j])
    mkt = rng.standard_normal((n_days, 2)).astype(np.float32)
    columns["mkt_ret"] = pa.array(mkt[day, 0])
    columns["mkt_vol"] = pa.array(mkt[day, 1])
    for h in HORIZONS:
        y = (0.05 * feats[:, 0] + rng.standard_normal(n)).astype(np.float32) * 0.01 * np.sqrt(h)
        y[day >= n_days - h] = np.nan
        columns[f"target_{h}d"] = pa.array(y, from_pandas=False)
        columns[f"oracle_{h}d"] = pa.array((0.0005 * feats[:, 0]).astype(np.float32))
    columns["return_1d"] = pa.array((rng.standard_normal(n) * 0.01).astype(np.float32))
    return pa.table(columns).replace_schema_metadata({"atft.schema_version": "1"})
