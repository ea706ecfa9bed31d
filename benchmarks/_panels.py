"""Full-size benchmark panels (3,800 stocks x 1,250 days, ~82 columns), written once and reused."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from atft.runs.files import write_parquet

CACHE = Path(os.environ.get("ATFT_BENCH_CACHE", "/tmp/atft-bench"))
HORIZONS = [1, 5, 10, 20]


def full_size_panel(n_stocks: int = 3800, n_days: int = 1250, n_features: int = 64, n_market: int = 8) -> Path:
    """A panel in the documented format: z-score-like features, ~4% missing rows (listing gaps)."""
    path = CACHE / f"panel_{n_stocks}x{n_days}x{n_features}.parquet"
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    day, stock = np.meshgrid(np.arange(n_days), np.arange(n_stocks), indexing="ij")
    keep = rng.random(day.shape) >= 0.04
    day, stock = day[keep], stock[keep]
    n = day.size
    dates = np.datetime64("2019-01-01") + day
    columns: dict[str, pa.Array] = {
        "date": pa.array(dates.astype("datetime64[D]"), pa.date32()),
        "code": pa.array(np.char.add("S", np.char.zfill(stock.astype(str), 4))),
        "sector": pa.array(np.char.add("SEC", (stock % 17).astype(str))),
        "market": pa.array(np.where(stock % 3 == 0, "GROWTH", "PRIME")),
    }
    for j in range(n_features):
        columns[f"feat_f{j:02d}"] = pa.array(np.clip(rng.standard_normal(n, dtype=np.float32), -5, 5))
    market = rng.standard_normal((n_days, n_market), dtype=np.float32)
    for j in range(n_market):
        columns[f"mkt_m{j}"] = pa.array(market[day, j])
    for h in HORIZONS:
        columns[f"target_{h}d"] = pa.array(rng.standard_normal(n, dtype=np.float32) * 0.02 * np.sqrt(h))
    columns["return_1d"] = pa.array(rng.standard_normal(n, dtype=np.float32) * 0.02)
    write_parquet(pa.table(columns), path)
    return path
