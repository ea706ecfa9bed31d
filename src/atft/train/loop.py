"""``fit``: the training loop, top to bottom in one function.

One optimizer step per ``train.accumulate_days`` day batches; AdamW with linear warmup then cosine decay;
gradients clipped; a moving average of the weights (``train.weight_average``, :mod:`atft.train.averaging`)
is what is evaluated on the validation days after every epoch, selected and saved; the best epoch chosen by a
validation metric computed in this run (``train.select_metric`` at ``train.select_horizon``). Nothing is
read from another run. ``.item()`` (a device sync) happens only at logging steps and epoch ends.
"""

from __future__ import annotations

import copy
import math
import resource
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import torch
from safetensors.torch import save_file

from atft.baselines import BaselineParams, Baselines, TreeParams, fold_rows
from atft.config import Config
from atft.data.batching import DayBatch, day_loader
from atft.data.panel import DensePanel
from atft.errors import Preempted, TrainingFailed
from atft.io import atomic_path, write_parquet
from atft.metrics.sinks import MetricSink
from atft.model import ATFT, ATFTOutput
from atft.rundir import RunDir
from atft.train.averaging import WeightAverage
from atft.train.checkpoint import Checkpoint, checkpoint_path, checkpoints_root
from atft.train.distributed import World, all_sum, any_rank, average_gradients, sum_count
from atft.train.evaluate import Predictions, predict, prediction_table, score
from atft.train.faults import Faults
from atft.train.losses import TERMS, DayLoss
from atft.train.preemption import StopRequest
from atft.train.progress import TrainProgress
from atft.train.resume import LoopState, restore, training_state, write_checkpoint
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


def build_optimizer(
    cfg: Config, model: ATFT, steps_per_epoch: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over ``model`` and its warmup-cosine schedule over ``train.epochs`` epochs."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    return optimizer, warmup_cosine(optimizer, cfg.train.warmup_steps, steps_per_epoch * cfg.train.epochs)


def build_model(cfg: Config, panel: DensePanel, target_scale: torch.Tensor) -> ATFT:
    """The model ``cfg`` describes for ``panel``'s features, market inputs and horizons."""
    return ATFT(cfg.model, len(panel.feature_names), len(panel.market_feature_names), panel.horizons, target_scale)


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


def fit(
    cfg: Config,
    panel: DensePanel,
    run: RunDir,
    sink: MetricSink,
    show_progress: bool = True,
    resume: Checkpoint | None = None,
    stop: StopRequest | None = None,
    world: World | None = None,
) -> FitResult:
    """Train on ``cfg.split.fold`` of ``panel``, select the best epoch on val, write predictions and weights.

    ``resume`` continues from a verified checkpoint (exactly: see :mod:`atft.train.resume`); ``stop``, once
    requested (SIGTERM), ends the run after the current step with a checkpoint and :class:`Preempted`.
    ``world``: this rank's place under torchrun (:mod:`atft.train.distributed`); only rank 0 writes.
    """
    started = time.perf_counter()
    world = world or World()
    torch.manual_seed(cfg.seed)
    data = prepare(cfg, panel, world.rank, world.size)
    device, precision = resolve_device(cfg.train), cfg.train.precision
    model = build_model(cfg, panel, data.target_scale).to(device)
    faults = Faults(cfg.faults, model, panel.feature_names)
    loss_fn = DayLoss(cfg.loss, panel.horizons, cfg.model.quantiles)
    if resume is None:
        sink.log_dict("preflight", 0, preflight(model, data, loss_fn, device, precision))
    health = Health(cfg, model, sink, panel.feature_names, world)

    train_sampler = data.samplers["train"]
    steps_per_epoch = max(1, len(train_sampler) // cfg.train.accumulate_days)
    optimizer, scheduler = build_optimizer(cfg, model, steps_per_epoch)
    loader = day_loader(data.dataset, train_sampler, cfg.data.num_workers, pin_memory=device.type == "cuda")
    average = WeightAverage(model, cfg.train.weight_average) if cfg.train.weight_average is not None else None
    loop, best_state = LoopState(), copy.deepcopy(model.state_dict())
    if resume is not None:
        loop = restore(resume, model, optimizer, scheduler, health, average, world)
        best_state = resume.best if resume.best is not None else best_state
    running = torch.tensor(loop.running or [0.0] * (len(TERMS) + 1), device=device)  # this rank's share
    params = list(model.parameters())

    def checkpoint() -> Path:
        """Every rank calls it (the sums are all-reduced); rank 0 writes."""
        saved = replace(
            loop,
            running=all_sum(running, world).tolist(),
            epoch_stock_days=sum_count(loop.epoch_stock_days, world, device),
            stock_days=sum_count(loop.stock_days, world, device),
        )
        if not world.is_main:
            return checkpoint_path(checkpoints_root(run.path), loop.step)
        state = training_state(cfg, saved, optimizer, scheduler, health, run.file("metrics.jsonl"))
        return write_checkpoint(cfg, run.path, model, best_state if loop.best_epoch >= 0 else None, average, state)

    def stopping() -> bool:
        return stop is not None and any_rank(stop.requested, world, device)

    def preempted(path: Path) -> Preempted:
        return Preempted(f"SIGTERM at step {loop.step}: checkpoint {path} written; rerun with --resume auto")

    progress = TrainProgress(cfg.train.epochs, len(train_sampler), enabled=show_progress)
    progress.advance(loop.epoch * len(train_sampler) + loop.batches // world.size)
    while loop.epoch < cfg.train.epochs:
        epoch = loop.epoch
        train_sampler.set_epoch(epoch, start=loop.batches)
        model.train()
        epoch_start = time.perf_counter()
        for batch in loader:
            batch = faults.on_batch(batch.to(device, non_blocking=True))
            with autocast(device, precision):
                out, loss, terms = _forward(model, batch, loss_fn)
            loss = faults.on_loss(loss, loop.step + 1)
            (loss / cfg.train.accumulate_days).backward()
            health.after_day(out, batch.y, batch.y_mask, batch.x[:, -1], batch.day)
            running += torch.stack([loss.detach(), *(terms[t].detach() for t in TERMS)])
            loop.batches += world.size  # day batches of the epoch, over all ranks
            loop.epoch_stock_days += len(batch.stocks)
            if (loop.batches // world.size) % cfg.train.accumulate_days:
                continue
            loop.step += 1
            step = loop.step
            average_gradients(params, world)
            health.before_clip(step, epoch)  # gradient flow, measured before clipping changes it
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            if not torch.isfinite(grad_norm):  # one sync per step: a NaN is caught at the step it appears
                stop_nonfinite(health, loss, step, run.file("nonfinite.safetensors"))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if average is not None:
                average.update(step)
            health.after_step(step)
            if step % cfg.train.log_every == 0:
                means = (all_sum(running, world) / loop.batches).tolist()  # a sync, only at logging steps
                record = dict(zip(("loss", *TERMS), means, strict=True))
                train = {"epoch": epoch, **record, "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm)}
                sink.log_dict("train", step, train)
                sink.log_dict("signal", step, {"epoch": epoch, **health.at_log(step)})
                progress.update(loss=record["loss"])
            progress.advance(cfg.train.accumulate_days)
            stop_now = stopping()
            if stop_now or step % cfg.train.checkpoint_every == 0:
                path = checkpoint()
                if stop_now:
                    raise preempted(path)

        wall = time.perf_counter() - epoch_start
        epoch_sums = all_sum(running, world)
        epoch_stock_days = sum_count(loop.epoch_stock_days, world, device)
        # every rank scores every validation day: the same numbers on every rank, so the same best epoch
        with average.applied() if average is not None else nullcontext():
            val = predict(model, data.dataset, data.samplers["val"], loss_fn, device, precision)
        val_metrics = score(val, val.point, panel.horizons, cfg.train.cost_bps)
        sink.log_dict("val", loop.step, {"epoch": epoch, "loss": val.loss, **val_metrics})
        signal = health.end_epoch(loop.step)  # learning signal over the epoch's days: one sync, once per epoch
        sink.log_dict(
            "epoch",
            loop.step,
            {
                "epoch": epoch,
                "wall_s": wall,
                "train_loss": float(epoch_sums[0] / max(loop.batches, 1)),
                "days": loop.batches,
                "stock_days_per_s": epoch_stock_days / wall,
                **signal,
                **health.degeneracy.counters(),
                **health.summary(),
            },
        )
        health.abort_without_signal(loop.step)  # after the epoch record, so the report names the failing t's
        value = _select(val_metrics, cfg)
        progress.epoch_done(epoch, value)
        if value > loop.best_value:
            evaluated = average.state_dict() if average is not None else model.state_dict()
            loop.best_value, loop.best_epoch, best_state = value, epoch, copy.deepcopy(evaluated)
        running.zero_()
        loop.epoch, loop.batches = epoch + 1, 0
        loop.stock_days, loop.epoch_stock_days = loop.stock_days + loop.epoch_stock_days, 0
        path = checkpoint()
        if stopping():
            raise preempted(path)
    progress.close()
    step, best_epoch, best_value = loop.step, loop.best_epoch, loop.best_value
    stock_days = sum_count(loop.stock_days, world, device)
    if not world.is_main:  # rank 0 selects, writes the weights and predictions, and reports
        return FitResult(best_epoch, best_value, {}, {})

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
    train = fold_rows(data.dataset.eligible, data.fold.train, cfg.data.lookback)
    val = fold_rows(data.dataset.eligible, data.fold.val, cfg.data.lookback)
    baselines = Baselines.fit(panel, *train, *val, baseline_params(cfg))
    tables, results = [], {}
    for split in ("val", "test"):
        pred: Predictions = predict(model, data.dataset, data.samplers[split], loss_fn, device, cfg.train.precision)
        others = baselines.forecast(pred.day, pred.stock)
        tables.append(
            prediction_table(split, pred, panel.dates, panel.codes, panel.horizons, cfg.model.quantiles, others)
        )
        results[split] = score(pred, pred.point, panel.horizons, cfg.train.cost_bps)
    write_parquet(pa.concat_tables(tables), run.file("predictions.parquet"))
    return results


def baseline_params(cfg: Config) -> BaselineParams:
    """The ``baselines:`` config as the fitting code takes it (the lightgbm baseline seeded by ``seed``)."""
    trees = cfg.baselines.lightgbm
    lightgbm = TreeParams(**trees.model_dump(exclude={"enabled"}), seed=cfg.seed) if trees.enabled else None
    return BaselineParams(ridge_lambda=cfg.baselines.ridge_lambda, lightgbm=lightgbm)


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
