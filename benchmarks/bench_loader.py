"""Day batches with their graphs: how fast the loader serves them, against how fast training eats them.

    python benchmarks/bench_loader.py [--stocks 3800 --days 1250 --batches 40 --hidden 64]

Serves ``--batches`` whole-day batches (every eligible stock of the day, lookback 20, graph included)
from the full-size panel, first with the graph built per date (uncached), then from the cache (the median of
five passes: a single pass swings by 2x on a shared machine, with where the pages of the panel happen to be), and
times a training step (forward + backward + AdamW) of a plain LSTM + multi-head-attention encoder of
hidden size ``--hidden`` on the same batches in the same process -- the floor of what a step of the real
model costs. The ratio loader-rate / step-rate must be >= 20 so the loader is never the bottleneck.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _panels import HORIZONS, full_size_panel

from atft.config import load_config
from atft.data.batching import DayBatch, DayDataset, DayItem
from atft.data.graph import StockGraph
from atft.data.panel import load_panel
from atft.train.runtime import cpu_info


class ReferenceEncoder(nn.Module):
    """LSTM -> self-attention over the lookback -> linear head per horizon: the plain reference."""

    def __init__(self, n_features: int, hidden: int, n_horizons: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.attn = nn.MultiheadAttention(hidden, 4, batch_first=True)
        self.head = nn.Linear(hidden, n_horizons)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(x)  # (n, T, H)
        a, _ = self.attn(h, h, h, need_weights=False)  # (n, T, H)
        return self.head(a[:, -1])  # (n, horizons)


def serve(ds: DayDataset, days: list[int]) -> tuple[float, list[DayBatch]]:
    start = time.perf_counter()
    batches = [ds[DayItem(d, 0, 1, seed=d)] for d in days]
    return len(days) / (time.perf_counter() - start), batches


def step_rate(batches: list[DayBatch], n_features: int, hidden: int) -> float:
    model = ReferenceEncoder(n_features, hidden, len(HORIZONS))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for batch in batches[:8]:
        start = time.perf_counter()
        loss = ((model(batch.x) - batch.y) ** 2 * batch.y_mask).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return 1.0 / statistics.median(times[1:])


def main() -> None:
    print(f"cpu: {cpu_info().describe()}")  # the processor beside the figures (README performance table)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stocks", type=int, default=3800)
    parser.add_argument("--days", type=int, default=1250)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()
    cfg = load_config(None, [])
    panel = load_panel(full_size_panel(args.stocks, args.days), HORIZONS)
    graph = StockGraph(panel.returns, panel.sector_id, panel.market_id, cfg.graph)
    ds = DayDataset(panel, graph, cfg)
    days = list(range(100, 100 + args.batches))
    uncached, batches = serve(ds, days)
    cached = statistics.median(serve(ds, days)[0] for _ in range(5))  # one pass swings 2x with page faults
    steps = step_rate(batches, len(panel.feature_names), args.hidden)
    stocks = statistics.mean(len(b.stocks) for b in batches)
    edges = statistics.mean(b.edge_index.shape[1] for b in batches)
    print(f"{len(days)} day batches, {stocks:.0f} stocks and {edges:.0f} edges each, lookback {cfg.data.lookback}")
    print(f"{'loader, graph built per date':<34}{uncached:8.2f} batches/s   {uncached / steps:6.1f}x the step rate")
    print(f"{'loader, graph cached':<34}{cached:8.2f} batches/s   {cached / steps:6.1f}x the step rate")
    print(
        f"{'training step, H=' + str(args.hidden) + ' reference':<34}{steps:8.2f} steps/s     (target: loader >= 20x)"
    )


if __name__ == "__main__":
    main()
