"""``fit``: the training loop, top to bottom in one function.

One optimizer step per ``train.accumulate_days`` day batches; AdamW with linear warmup then cosine decay;
gradients clipped; evaluation on the validation days after every epoch; the best epoch chosen by a
validation metric computed in this run (``train.select_metric`` at ``train.select_horizon``). Nothing is
read from another run. ``.item()`` (a device sync) happens only at logging steps and epoch ends.
"""

from __future__ import annotations

import copy
import math
import resource
import time
from dataclasses import dataclass

import pyarrow as pa
import torch
from safetensors.torch import save_file

from atft.baselines import baseline_forecasts, fit_ridge
from atft.config import Config
from atft.data.batching import DayBatch, day_loader
from atft.data.contract import check_panel
from atft.data.panel import DensePanel
from atft.errors import TrainingFailed
from atft.io import atomic_path, write_parquet
from atft.metrics.sinks import MetricSink
from atft.model import ATFT, ATFTOutput
from atft.rundir import RunDir
from atft.train.evaluate import Predictions, predict, prediction_table, score
from atft.train.faults import Faults
from atft.train.losses import TERMS, DayLoss
from atft.train.progress import TrainProgress
from atft.train.runtime import autocast, resolve_device
from atft.train.setup import TrainingData, prepare
from atft.train.watch import Health, stop_nonfinite


@dataclass
class FitResult:
    best_epoch: int
    best_value: float
    val: dict[str, float]
    test: dict[str, float]


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over ``warmup`` steps, then cosine decay to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _forward(
    model: ATFT, batch: DayBatch, loss_fn: DayLoss
) -> tuple[ATFTOutput, torch.Tensor, dict[str, torch.Tensor]]:
    out = model(batch.x, batch.x_mask, batch.market, batch.market_mask, batch.edge_index, batch.edge_attr)
    loss, terms = loss_fn(out.quantiles, out.point, batch.y, batch.y_mask, model.target_scale)
    return out, loss, terms


def component_grad_norms(model: ATFT) -> dict[str, float]:
    """L2 norm of the gradient of each named component (0.0 where no parameter got a gradient)."""
    norms = {}
    for name, module in model.components().items():
        grads = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
        norms[name] = float(torch.linalg.vector_norm(torch.stack(grads))) if grads else 0.0
    return norms


def preflight(
    model: ATFT, data: TrainingData, loss_fn: DayLoss, device: torch.device, precision: str
) -> dict[str, float]:
    """One forward/backward on the first training day: a broken setup fails here, in seconds."""
    item = next(iter(data.samplers["train"]))
    model.train()
    with autocast(device, precision):
        _, loss, _ = _forward(model, data.dataset[item].to(device), loss_fn)
    if not torch.isfinite(loss):
        raise TrainingFailed(f"pre-flight: the loss of day {data.panel.dates[item.day]} is {float(loss)}")
    loss.backward()
    norms = component_grad_norms(model)  # a component without gradient is named by the monitor at step 1
    model.zero_grad(set_to_none=True)
    return {"loss": float(loss.detach()), **{f"grad_norm/{k}": v for k, v in norms.items()}}


def _select(metrics: dict[str, float], cfg: Config) -> float:
    value = metrics[f"{cfg.train.select_metric}_{cfg.train.select_horizon}d"]
    return value if math.isfinite(value) else -math.inf


def fit(cfg: Config, panel: DensePanel, run: RunDir, sink: MetricSink, show_progress: bool = True) -> FitResult:
    """Train on ``cfg.split.fold`` of ``panel``, select the best epoch on val, write predictions and weights."""
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    check_panel(panel, cfg).raise_if_failed(panel.source)  # the data contract, before anything else
    data = prepare(cfg, panel)
    device, precision = resolve_device(cfg.train), cfg.train.precision
    model = ATFT(
        cfg.model, len(panel.feature_names), len(panel.market_feature_names), panel.horizons, data.target_scale
    )
    model.to(device)
    faults = Faults(cfg.faults, model, panel.feature_names)
    loss_fn = DayLoss(cfg.loss, panel.horizons, cfg.model.quantiles)
    sink.log_dict("preflight", 0, preflight(model, data, loss_fn, device, precision))
    health = Health(cfg, model, sink, panel.feature_names)

    train_sampler = data.samplers["train"]
    steps_per_epoch = max(1, len(train_sampler) // cfg.train.accumulate_days)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    scheduler = warmup_cosine(optimizer, cfg.train.warmup_steps, steps_per_epoch * cfg.train.epochs)
    loader = day_loader(data.dataset, train_sampler, cfg.data.num_workers, pin_memory=device.type == "cuda")
    best_value, best_epoch, best_state = -math.inf, -1, copy.deepcopy(model.state_dict())
    step, stock_days, running = 0, 0, torch.zeros(len(TERMS) + 1, device=device)
    progress = TrainProgress(cfg.train.epochs, len(train_sampler), enabled=show_progress)
    for epoch in range(cfg.train.epochs):
        train_sampler.set_epoch(epoch)
        model.train()
        epoch_start, epoch_stock_days, n_batches = time.perf_counter(), 0, 0
        for i, batch in enumerate(loader):
            batch = faults.on_batch(batch.to(device, non_blocking=True))
            with autocast(device, precision):
                out, loss, terms = _forward(model, batch, loss_fn)
            loss = faults.on_loss(loss, step + 1)
            (loss / cfg.train.accumulate_days).backward()
            health.after_day(out, batch.y, batch.y_mask, batch.x[:, -1])
            running += torch.stack([loss.detach(), *(terms[t].detach() for t in TERMS)])
            n_batches += 1
            epoch_stock_days += len(batch.stocks)
            if (i + 1) % cfg.train.accumulate_days:
                continue
            step += 1
            health.before_clip(step, epoch)  # gradient flow, measured before clipping changes it
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            if not torch.isfinite(grad_norm):  # one sync per step: a NaN is caught at the step it appears
                stop_nonfinite(health, loss, step, run.file("nonfinite.safetensors"))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            health.after_step(step)
            if step % cfg.train.log_every == 0:
                means = (running / n_batches).tolist()  # a sync, only at logging steps
                record = dict(zip(("loss", *TERMS), means, strict=True))
                train = {"epoch": epoch, **record, "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm)}
                sink.log_dict("train", step, train)
                sink.log_dict("signal", step, {"epoch": epoch, **health.at_log(step)})
                progress.update(loss=record["loss"])
            progress.advance(cfg.train.accumulate_days)

        epoch_loss = float(running[0] / max(n_batches, 1))
        running.zero_()
        stock_days += epoch_stock_days
        wall = time.perf_counter() - epoch_start
        val = predict(model, data.dataset, data.samplers["val"], loss_fn, device, precision)
        val_metrics = score(val, val.point, panel.horizons, cfg.train.cost_bps)
        sink.log_dict("val", step, {"epoch": epoch, "loss": val.loss, **val_metrics})
        sink.log_dict(
            "epoch",
            step,
            {
                "epoch": epoch,
                "wall_s": wall,
                "train_loss": epoch_loss,
                "days": n_batches,
                "stock_days_per_s": epoch_stock_days / wall,
                **health.degeneracy.counters(),
                **health.summary(),
            },
        )
        value = _select(val_metrics, cfg)
        progress.epoch_done(epoch, value)
        if value > best_value:
            best_value, best_epoch, best_state = value, epoch, copy.deepcopy(model.state_dict())
    progress.close()

    model.load_state_dict(best_state)
    sink.log_dict(
        "selection",
        step,
        {
            "best_epoch": best_epoch,
            "metric": cfg.train.select_metric,
            "horizon": cfg.train.select_horizon,
            "value": best_value,
        },
    )
    with atomic_path(run.file("model.safetensors")) as tmp:
        save_file({k: v.contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp))
    results = _final_predictions(cfg, model, data, loss_fn, device, run)
    sink.log_dict("cost", step, _cost(started, stock_days, device) | health.summary())
    return FitResult(best_epoch, best_value, results["val"], results["test"])


def _final_predictions(
    cfg: Config, model: ATFT, data: TrainingData, loss_fn: DayLoss, device: torch.device, run: RunDir
) -> dict[str, dict[str, float]]:
    """Best-epoch forecasts of val and test beside the baselines, written to predictions.parquet."""
    panel = data.panel
    train_days = torch.tensor([d for d in data.fold.train if d >= cfg.data.lookback - 1])
    rows = data.dataset.eligible[train_days].nonzero()
    beta = fit_ridge(panel, train_days[rows[:, 0]], rows[:, 1])
    tables, results = [], {}
    for split in ("val", "test"):
        pred: Predictions = predict(model, data.dataset, data.samplers[split], loss_fn, device, cfg.train.precision)
        others = baseline_forecasts(panel, pred.day, pred.stock, beta)
        tables.append(
            prediction_table(split, pred, panel.dates, panel.codes, panel.horizons, cfg.model.quantiles, others)
        )
        results[split] = score(pred, pred.point, panel.horizons, cfg.train.cost_bps)
    write_parquet(pa.concat_tables(tables), run.file("predictions.parquet"))
    return results


def _cost(started: float, stock_days: int, device: torch.device) -> dict[str, float | str]:
    wall = time.perf_counter() - started
    cost: dict[str, float | str] = {
        "wall_s": wall,
        "stock_days_per_s": stock_days / wall,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "device": str(device),
    }
    if device.type == "cuda":
        cost["gpu_peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
        cost["gpu_utilization"] = torch.cuda.utilization(device)
    return cost
