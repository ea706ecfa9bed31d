"""Amortised cost of the gradient monitor and the activation-gradient hooks.

    python benchmarks/bench_grad_monitor.py [--stocks 300 --steps 200 --every 50]

Runs the same training steps (one day's cross-section, forward + backward + clip + AdamW) three ways,
interleaved so machine noise hits each: ``plain`` (no monitors), ``grad`` (the gradient monitor every
``--every`` steps and the activation-gradient hooks: the issue's target, <= 3% at every=50) and ``all``
(also the per-day degeneracy guard and learning-signal monitor, as ``atft train`` runs them). Prints each
overhead as a share of the plain step time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_train_step import HORIZONS, one_day

from atft.config import load_config
from atft.health.monitors import Monitors
from atft.model import ATFT
from atft.telemetry.sinks import Sinks
from atft.train.losses import DayLoss
from atft.train.runtime import cpu_info


def run(batch, steps: int, mode: str, every: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds for ``steps`` optimizer steps with the monitors of ``mode`` (plain, grad or all)."""
    sets = [f"health.grad_monitor.every={every}", f"health.grad_monitor.enabled={str(mode != 'plain').lower()}"]
    cfg = load_config(None, sets)
    torch.manual_seed(0)
    model = ATFT(cfg.model, batch.x.shape[-1], batch.market.shape[-1], HORIZONS, torch.full((4,), 0.03))
    loss_fn = DayLoss(cfg.loss, HORIZONS, cfg.model.quantiles)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    health = Monitors(cfg, model, Sinks(), [f"f{j}" for j in range(batch.x.shape[-1])]) if mode != "plain" else None
    start = time.perf_counter()
    for step in range(1, steps + 1):
        out = model(batch.x, batch.x_mask, batch.market, batch.market_mask, batch.edge_index, batch.edge_attr)
        loss, _ = loss_fn(out.quantiles, out.point, batch.y, batch.y_mask, model.target_scale)
        loss.backward()
        if health is not None:
            if mode == "all":
                health.after_day(out, batch.y, batch.y_mask, batch.x[:, -1], batch.day)
            health.before_clip(step, 0)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if health is not None:
            health.after_step(step)
    return time.perf_counter() - start


def main() -> None:
    print(f"cpu: {cpu_info().describe()}")  # the processor beside the figures (README performance table)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stocks", type=int, default=300)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    batch, _ = one_day(args.stocks)
    ratios: dict[str, list[float]] = {"grad": [], "all": []}
    for _ in range(args.pairs):
        plain = run(batch, args.steps, "plain", args.every)
        line = f"plain {plain:7.2f} s"
        for mode, seen in ratios.items():
            seconds = run(batch, args.steps, mode, args.every)
            seen.append(seconds / plain)
            line += f"   {mode} {seconds:7.2f} s (x{seconds / plain:.4f})"
        print(line)
    print(f"{len(batch.stocks)} stocks, {args.steps} steps, grad monitor every {args.every}, median overhead:")
    print(f"  gradient monitor + activation hooks: {statistics.median(ratios['grad']) - 1:+.1%} (target <= 3%)")
    print(f"  every monitor of a training run:     {statistics.median(ratios['all']) - 1:+.1%}")


if __name__ == "__main__":
    main()
