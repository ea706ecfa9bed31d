"""Training-step throughput of ATFT-GAT-FAN against two references, in the same process.

    python benchmarks/bench_train_step.py [--stocks 1000 --hidden 64 256 --tft]

For each hidden size H, on the same stocks and features (one day of the synthetic market, lookback 20),
times forward + backward + AdamW step and reports stock-days per second (one stock-day = one sample):

* ``atft`` -- the full model on one day's cross-section with its stock graph, fp32 and bf16 autocast, and
  the weight average's update (``train.weight_average``, on by default), as the training loop runs it;
* ``lstm+mha`` -- a plain LSTM + multi-head self-attention + linear heads of the same H over the same
  tensors: the floor of what such an encoder costs (target: atft >= 0.4x its throughput);
* ``tft`` (with ``--tft``, needs ``pytorch-forecasting``) -- pytorch-forecasting's
  TemporalFusionTransformer at the same H and lookback, fed by its own TimeSeriesDataSet over the same
  stocks and features (target: atft >= 10x its throughput).

It also reports atft's peak memory per 1,000 stocks of a day (CPU: the growth of the process's peak RSS
during the H=256 steps, scaled to 1,000 stocks).

The first line names the CPU and the flags that decide these figures (``-flag``: absent): avx2, avx512f, and
avx512_bf16 / amx_bf16, without which bf16 is emulated (slower than fp32, where with them it is faster).
A figure quoted from this script names that line's CPU.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from atft.config import load_config
from atft.data.batching import DayBatch, DayDataset, DayItem
from atft.data.graph import StockGraph
from atft.data.panel import DensePanel, load_panel
from atft.data.sources import synthetic_panel
from atft.model import ATFT
from atft.runs.files import write_parquet
from atft.train.averaging import WeightAverage
from atft.train.losses import DayLoss
from atft.train.runtime import autocast, bf16_warning, cpu_info

HORIZONS = [1, 5, 10, 20]


class LstmMha(nn.Module):
    """The reference: LSTM -> self-attention over the lookback -> linear heads (all quantiles, all horizons)."""

    def __init__(self, n_features: int, hidden: int, heads: int, outputs: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.head = nn.Linear(hidden, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(x)  # (n, T, H)
        a, _ = self.attention(h, h, h, need_weights=False)  # (n, T, H)
        return self.head(a[:, -1])  # (n, outputs)


def time_steps(step: Callable[[], None], repeats: int) -> float:
    """Median seconds of one step after two warm-up steps."""
    for _ in range(2):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def atft_step(batch: DayBatch, hidden: int, precision: str, n_features: int, n_market: int) -> Callable[[], None]:
    cfg = load_config(None, [f"model.hidden_size={hidden}", f"model.attention_heads={4 if hidden < 128 else 8}"])
    model = ATFT(cfg.model, n_features, n_market, HORIZONS, torch.full((4,), 0.03))
    loss_fn = DayLoss(cfg.loss, HORIZONS, cfg.model.quantiles)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    average = WeightAverage(model, cfg.train.weight_average or 0.998)
    device = torch.device("cpu")

    def step() -> None:
        with autocast(device, precision):
            out = model(batch.x, batch.x_mask, batch.market, batch.market_mask, batch.edge_index, batch.edge_attr)
        loss, _ = loss_fn(out.quantiles, out.point, batch.y, batch.y_mask, model.target_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        average.update(1000)

    return step


def reference_step(batch: DayBatch, hidden: int, n_features: int) -> Callable[[], None]:
    model = LstmMha(n_features, hidden, 4 if hidden < 128 else 8, len(HORIZONS) * 5)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        out = model(batch.x)
        loss = ((out[:, ::5] - batch.y) ** 2 * batch.y_mask).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def one_day(stocks: int) -> tuple[DayBatch, DensePanel]:
    """The fullest day of a synthetic market of ``stocks`` stocks, as a batch, and its panel."""
    cfg = load_config(None, [f"synth.n_stocks={stocks}", "synth.n_days=300"])
    path = Path(tempfile.mkdtemp()) / "panel.parquet"
    write_parquet(synthetic_panel(cfg)[1], path)
    panel = load_panel(path, HORIZONS)
    ds = DayDataset(panel, StockGraph(panel.returns, panel.sector_id, panel.market_id, cfg.graph), cfg)
    day = int(ds.eligible.sum(1).argmax())
    return ds[DayItem(day, 0, 1, seed=None)], panel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stocks", type=int, default=1000)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tft", action="store_true", help="also time pytorch-forecasting's TFT")
    args = parser.parse_args()
    cpu = cpu_info()
    print(f"cpu: {cpu.describe()}; torch {torch.__version__}")
    if (warning := bf16_warning(torch.device("cpu"), "bf16", cpu)) is not None:
        print(f"note: {warning}")
    batch, panel = one_day(args.stocks)
    n, f, m = len(batch.stocks), batch.x.shape[-1], batch.market.shape[-1]
    print(
        f"one day: {n} stocks, lookback {batch.x.shape[1]}, {f} features, {m} market inputs, "
        f"{batch.edge_index.shape[1]} edges; torch threads {torch.get_num_threads()}"
    )
    for hidden in args.hidden:
        rates = {}
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for precision in ("fp32", "bf16"):
            rates[f"atft {precision}"] = n / time_steps(atft_step(batch, hidden, precision, f, m), args.repeats)
        rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
        rates["lstm+mha fp32"] = n / time_steps(reference_step(batch, hidden, f), args.repeats)
        if args.tft:
            from _tft import tft_rate

            rates["tft fp32"] = tft_rate(panel, hidden, args.repeats)
        for name, rate in rates.items():
            vs_ref = rate / rates["lstm+mha fp32"]
            line = f"H={hidden:<4} {name:<16} {rate:10.0f} stock-days/s   {vs_ref:5.2f}x lstm+mha"
            if "tft fp32" in rates:
                line += f"   {rate / rates['tft fp32']:6.1f}x tft"
            print(line)
        if hidden == max(args.hidden):
            per_1000 = rss_growth / 2**20 * 1000 / n
            print(f"H={hidden:<4} peak RSS growth during atft steps: {per_1000:.0f} MiB per 1,000 stocks")


if __name__ == "__main__":
    main()
