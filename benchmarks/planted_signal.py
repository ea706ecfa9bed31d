"""Which part of the planted signal each run's model tracks, on the embedded synthetic market.

    python benchmarks/planted_signal.py RUN_DIR [RUN_DIR ...] [--horizon 5]

The oracle is the sum of an own-signal part (the filtered ``flow_imbalance``) and a lead-lag part (the
filtered news of the stock's hidden cluster; ``atft.data.synth``), whose two coefficients each run fitted on
its fold's training days (``atft.baselines.oracle``). Realised RankIC on 115 test days mixes
both with the window's luck: on the demo market's test window the own part alone scores more than the whole
oracle and the lead-lag part little, so a model without the graph can match the full one there. What the
graph is for is the lead-lag part, and how closely a model's forecasts follow it is measured without that
noise: the mean over days of the Spearman correlation between the model's forecast and each part.

Regenerates each run's market from its ``config.yaml`` (deterministic in ``synth.seed``) for the own part and
reads its ``predictions.parquet``, whose ``oracle_<h>d`` is the fold's oracle, so the lead-lag part is the oracle
minus the own part; prints, per run and split, the model's RankIC, the oracle's RankIC, each part's
RankIC and the model's correlation with each part.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from atft.config import load_config
from atft.data.synth import generate
from atft.metrics.finance import daily_rank_ic


def mean_rank_ic(day: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Mean over days of the Spearman correlation of ``a`` and ``b`` across that day's rows: the report's RankIC."""
    _, values, _ = daily_rank_ic(day, a, b)
    return float(values.mean())


def run_rows(run: Path, h: int) -> list[dict[str, object]]:
    cfg = load_config(run / "config.yaml")
    market = generate(cfg.synth, cfg.data.horizons)
    dates = np.unique(market.table["date"].to_numpy())
    symbols = np.unique(market.table["symbol"].to_numpy(zero_copy_only=False))
    own = market.own_part(h)
    predictions = pq.read_table(run / "predictions.parquet")
    rows = []
    for split in ("val", "test"):
        part = predictions.filter(np.asarray(predictions["split"].to_numpy(zero_copy_only=False) == split))
        day = np.searchsorted(dates, part["date"].to_numpy())
        stock = np.searchsorted(symbols, part["code"].to_numpy(zero_copy_only=False))
        target, model = (part[f"{c}_{h}d"].to_numpy(zero_copy_only=False) for c in ("target", "model"))
        oracle = part[f"oracle_{h}d"].to_numpy(zero_copy_only=False)
        own_s = own[day, stock]
        lead_lag_s = oracle - own_s  # the fold's lead-lag part, with the coefficients the run fitted
        rows.append(
            {
                "run": run.name,
                "split": split,
                "model RankIC": mean_rank_ic(day, model, target),
                "oracle RankIC": mean_rank_ic(day, oracle, target),
                "own part RankIC": mean_rank_ic(day, own_s, target),
                "lead-lag part RankIC": mean_rank_ic(day, lead_lag_s, target),
                "model ~ own part": mean_rank_ic(day, model, own_s),
                "model ~ lead-lag part": mean_rank_ic(day, model, lead_lag_s),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--horizon", type=int, default=5)
    args = parser.parse_args()
    rows = [row for run in args.runs for row in run_rows(run, args.horizon)]
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("| " + " | ".join("---" if c in ("run", "split") else "---:" for c in columns) + " |")
    for row in rows:
        print("| " + " | ".join(v if isinstance(v, str) else f"{v:.4f}" for v in row.values()) + " |")


if __name__ == "__main__":
    main()
