"""What the fold's baselines cost to fit: LightGBM against the ridge on the same rows, in the same process.

    python benchmarks/bench_baselines.py --panel demo          # the default synthetic market, the demo fold
    python benchmarks/bench_baselines.py --panel sp500-shape   # random, the S&P fold's shape: 470 stocks,
                                                               # 2,000 training days, 44 features
    [--threads N]   LightGBM threads (default: the baseline's own rule, TreeParams.num_threads = 0)

Prints, per baseline fit: wall and CPU seconds and LightGBM's wall time over the ridge's; LightGBM's rounds per
horizon and threads; the fit's peak memory (VmHWM growth during the fit, the high-water mark reset just
before it through /proc/self/clear_refs) against the bytes of the training design (rows x features float32).
On the demo panel also each source's mean RankIC on the fold's validation and test rows, and the oracle's with
its coefficients fitted on every day instead of the training days (the gap the fold fit costs).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atft.baselines import BaselineParams, Baselines, TreeParams, fit_ridge, fold_rows
from atft.baselines.oracle import fit_oracle
from atft.baselines.trees import fit_trees
from atft.config import load_config
from atft.data.batching import eligible_stocks
from atft.data.panel import DensePanel, load_panel
from atft.data.sources import write_synthetic
from atft.data.splits import Fold, pick, walk_forward
from atft.metrics.finance import daily_rank_ic
from atft.train.runtime import cpu_info

CACHE = Path(os.environ.get("ATFT_BENCH_CACHE", "/tmp/atft-bench"))
ROOT = Path(__file__).resolve().parents[1]
LOOKBACK = 20


def memory_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"/proc/self/status has no {field}: this benchmark reads Linux's memory counters")
    return int(match[1])


def measured(fn: Callable[[], Any]) -> tuple[Any, float, float, int]:
    """(result, wall s, CPU s, peak RSS growth in bytes) of ``fn()``."""
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)
    before = memory_kib("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return result, wall, cpu, (memory_kib("VmHWM") - before) * 1024


def demo_panel() -> tuple[DensePanel, Fold]:
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    path = CACHE / f"demo-synthetic-{cfg.synth.seed}.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_synthetic(cfg, path)
    panel = load_panel(path, cfg.data.horizons)
    return panel, pick(walk_forward(panel.dates, cfg, calendar=str(path)), cfg.split.fold)


def sp500_shape(n_stocks: int = 470, n_features: int = 44) -> tuple[DensePanel, Fold]:
    """Random z-scored features (3% missing) and targets with a weak, partly non-linear signal, the S&P fold's
    shape: 2,000 training days, purge 20, 250 validation days, embargo 20, 250 test days."""
    fold = Fold(0, range(0, 2000), range(2020, 2270), range(2290, 2540), "sp500-shape")
    n_days, g = fold.test.stop, torch.Generator().manual_seed(0)
    features = torch.randn(n_days, n_stocks, n_features, generator=g).clamp(-5, 5)
    features[torch.rand(features.shape, generator=g) < 0.03] = float("nan")
    f0, f1 = features[..., 0].nan_to_num(), features[..., 1].nan_to_num()
    signal = 0.05 * f0 + 0.05 * torch.sign(f0 * f1)
    horizons = [1, 5, 10, 20]
    targets = torch.stack([0.02 * h**0.5 * (signal + torch.randn(signal.shape, generator=g)) for h in horizons], -1)
    panel = DensePanel(
        dates=np.datetime64("2010-01-01") + np.arange(n_days),
        codes=np.array([f"S{i:04d}" for i in range(n_stocks)]),
        feature_names=[f"f{j:02d}" for j in range(n_features)],
        market_feature_names=[],
        horizons=horizons,
        features=features,
        market=torch.zeros(n_days, 0),
        targets=targets,
        returns=0.02 * torch.randn(n_days, n_stocks, generator=g),
        present=torch.ones(n_days, n_stocks, dtype=torch.bool),
        sector_id=torch.zeros(n_stocks, dtype=torch.int64),
        market_id=torch.zeros(n_stocks, dtype=torch.int64),
        sectors=["S"],
        markets=["M"],
        oracle=None,
        source="sp500-shape (random)",
    )
    return panel, fold


def rank_ic(days: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(daily_rank_ic(days.numpy(), pred.numpy(), target.numpy())[1].mean())


def scores(panel: DensePanel, rows: dict[str, tuple[torch.Tensor, torch.Tensor]], trees: TreeParams) -> None:
    """Mean RankIC per source, split and horizon; the oracle also with its coefficients from every day."""
    baselines = Baselines.fit(panel, *rows["train"], *rows["val"], BaselineParams(lightgbm=trees))
    everything = fit_oracle(panel, *fold_rows(eligible_stocks(panel, LOOKBACK), range(panel.n_days), LOOKBACK))
    print(f"oracle (b1, b2): fold {baselines.oracle.coef if baselines.oracle else None}, "
          f"every day {everything.coef if everything else None}")  # fmt: skip
    print("| source | split | " + " | ".join(f"RankIC {h}d" for h in panel.horizons) + " |")
    print("| --- | --- |" + " ---: |" * len(panel.horizons))
    for split in ("val", "test"):
        days, stocks = rows[split]
        out = baselines.forecast(days, stocks)
        if everything is not None:
            out["oracle, every day's fit"] = everything.forecast(panel, days, stocks)
        target = panel.targets[days, stocks]
        for source, pred in out.items():
            ics = [rank_ic(days, pred[:, k], target[:, k]) for k in range(len(panel.horizons))]
            print(f"| {source} | {split} | " + " | ".join(f"{v:.4f}" for v in ics) + " |")


def main() -> None:
    print(f"cpu: {cpu_info().describe()}")  # the processor beside the figures (README performance table)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--panel", choices=("demo", "sp500-shape"), default="demo")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    panel, fold = demo_panel() if args.panel == "demo" else sp500_shape()
    eligible = eligible_stocks(panel, LOOKBACK)
    rows = {name: fold_rows(eligible, days, LOOKBACK) for name, days in fold.segments().items()}
    trees = dataclasses.replace(TreeParams(), num_threads=args.threads)
    n_train, n_features = len(rows["train"][0]), panel.features.shape[-1]
    threads = trees.lightgbm(n_train)["num_threads"]
    print(f"{panel.source}: {n_train} training rows, {len(rows['val'][0])} validation rows, {n_features} features, "
          f"torch threads {torch.get_num_threads()}, lightgbm threads {threads}")  # fmt: skip
    _, ridge_s, ridge_cpu, ridge_mem = measured(lambda: fit_ridge(panel, *rows["train"]))
    fit, trees_s, trees_cpu, trees_mem = measured(lambda: fit_trees(panel, rows["train"], rows["val"], trees))
    design = n_train * n_features * 4
    print(f"ridge:    {ridge_s:7.2f} s wall, {ridge_cpu:7.2f} s CPU, peak +{ridge_mem / 2**20:6.0f} MiB")
    print(f"lightgbm: {trees_s:7.2f} s wall, {trees_cpu:7.2f} s CPU, peak +{trees_mem / 2**20:6.0f} MiB "
          f"({trees_mem / design:.2f}x the {design / 2**20:.0f} MiB design), rounds {fit.best_rounds}")  # fmt: skip
    print(f"lightgbm / ridge wall time: {trees_s / ridge_s:.1f}x")
    if args.panel == "demo":
        scores(panel, rows, trees)


if __name__ == "__main__":
    main()
