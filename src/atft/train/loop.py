"""``fit``: the training loop, top to bottom.

One optimizer step per ``train.accumulate_days`` day batches; AdamW with linear warmup then cosine decay;
gradients clipped; the weight average (``train.weight_average``, :mod:`atft.train.averaging`; the identity
when off) is what is evaluated on the validation days after every epoch, and the best epoch is chosen by a
validation metric computed in this run (``train.select_metric`` at ``train.select_horizon``). What the loop
trains with is built by :func:`atft.train.setup.build_training`; what comes after the last epoch (selection,
weights, predictions) is :func:`atft.train.job.finish`. Nothing is read from another run.

Host-device syncs, each of which stalls a GPU until its queue drains (``tests/unit/test_syncs.py`` counts
them on CPU): one per optimizer step (is the gradient norm finite?) and one more under DDP (did any rank get
SIGTERM?). The loss and the per-day monitors mask rather than index, so a day costs none. Everything else
waits for a logging step (``train.log_every``), a monitor's check or an epoch end.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from atft.config import Config
from atft.data.batching import DayBatch, day_loader
from atft.errors import Preempted
from atft.health.monitors import stop_nonfinite
from atft.train.checkpoint import checkpoint_path, checkpoints_root
from atft.train.distributed import all_sum, any_rank, average_gradients, sum_count
from atft.train.evaluate import predict, score
from atft.train.losses import TERMS
from atft.train.preemption import StopRequest
from atft.train.progress import TrainProgress
from atft.train.resume import training_state, write_checkpoint
from atft.train.runtime import autocast
from atft.train.setup import Training, forward


@dataclass
class FitResult:
    best_epoch: int
    best_value: float
    val: dict[str, float]
    test: dict[str, float]


def fit(t: Training, stop: StopRequest | None = None, show_progress: bool = True) -> None:
    """Train from where ``t.loop`` stands to the last epoch, with a checkpoint every
    ``train.checkpoint_every`` steps and at every epoch end.

    ``stop``, once requested (SIGTERM), ends the run after the current step with a checkpoint and
    :class:`Preempted`. Every rank runs it (under torchrun); only rank 0 writes.
    """
    cfg, loop = t.cfg, t.loop
    sampler = t.data.samplers["train"]
    loader = day_loader(t.data.dataset, sampler, cfg.data.num_workers, pin_memory=t.device.type == "cuda")
    running = torch.tensor(loop.running or [0.0] * (len(TERMS) + 1), device=t.device)  # this rank's sums
    progress = TrainProgress(cfg.train.epochs, len(sampler), enabled=show_progress)
    progress.advance(loop.epoch * len(sampler) + loop.batches // t.world.size)
    while loop.epoch < cfg.train.epochs:
        sampler.set_epoch(loop.epoch, start=loop.batches)
        t.model.train()
        started = time.perf_counter()
        for batch in loader:
            loss = train_day(t, batch.to(t.device, non_blocking=True), running)
            if (loop.batches // t.world.size) % cfg.train.accumulate_days:
                continue  # the gradients of train.accumulate_days days make one step
            grad_norm = optimizer_step(t, loss)
            if loop.step % cfg.train.log_every == 0:
                log_step(t, running, grad_norm, progress)
            progress.advance(cfg.train.accumulate_days)
            checkpoint_or_stop(t, running, stop, due=loop.step % cfg.train.checkpoint_every == 0)
        end_epoch(t, running, time.perf_counter() - started, progress)
        checkpoint_or_stop(t, running, stop, due=True)
    progress.close()


def train_day(t: Training, batch: DayBatch, running: torch.Tensor) -> torch.Tensor:
    """Forward and backward on one day's cross-section, its readings to the monitors; returns its loss."""
    batch = t.faults.on_batch(batch)
    with autocast(t.device, t.precision):
        out, loss, terms = forward(t.model, batch, t.loss_fn)
    loss = t.faults.on_loss(loss, t.loop.step + 1)
    (loss / t.cfg.train.accumulate_days).backward()
    t.monitors.after_day(out, batch.y, batch.y_mask, batch.x[:, -1], batch.day)
    running += torch.stack([loss.detach(), *(terms[name].detach() for name in TERMS)])
    t.loop.batches += t.world.size  # day batches of the epoch, over all ranks
    t.loop.epoch_stock_days += len(batch.stocks)
    return loss


def optimizer_step(t: Training, loss: torch.Tensor) -> torch.Tensor:
    """Average the gradients over ranks, measure, clip, step; returns the gradient norm before clipping."""
    t.loop.step += 1
    step = t.loop.step
    average_gradients(t.params, t.world)
    t.monitors.before_clip(step, t.loop.epoch)  # gradient flow, measured before clipping changes it
    grad_norm = torch.nn.utils.clip_grad_norm_(t.params, t.cfg.train.grad_clip)
    if not torch.isfinite(grad_norm):  # the one sync every step pays: a NaN is caught at the step it appears
        stop_nonfinite(t.monitors, loss, step, t.run.file("nonfinite.safetensors"))
    t.optimizer.step()
    t.scheduler.step()
    t.optimizer.zero_grad(set_to_none=True)
    t.average.update(step)
    t.monitors.after_step(step)
    return grad_norm


def log_step(t: Training, running: torch.Tensor, grad_norm: torch.Tensor, progress: TrainProgress) -> None:
    """The ``train`` and ``signal`` records of a logging step (their values cost one sync, every log_every)."""
    loop = t.loop
    means = (all_sum(running, t.world) / loop.batches).tolist()
    record = dict(zip(("loss", *TERMS), means, strict=True))
    train = {"epoch": loop.epoch, **record, "lr": t.scheduler.get_last_lr()[0], "grad_norm": float(grad_norm)}
    t.sink.log_dict("train", loop.step, train)
    t.sink.log_dict("signal", loop.step, {"epoch": loop.epoch, **t.monitors.at_log(loop.step)})
    progress.update(loss=record["loss"])


def end_epoch(t: Training, running: torch.Tensor, wall: float, progress: TrainProgress) -> None:
    """Score the epoch's (averaged) weights on val, log the epoch, judge its learning signal, keep the best."""
    cfg, loop, world = t.cfg, t.loop, t.world
    epoch_sums = all_sum(running, world)
    stock_days = sum_count(loop.epoch_stock_days, world, t.device)
    with t.average.applied():  # every rank scores every validation day: the same best epoch on every rank
        val = predict(t.model, t.data.dataset, t.data.samplers["val"], t.loss_fn, t.device, t.precision)
    val_metrics = score(val, val.point, t.data.panel.horizons, cfg.train.cost_bps)
    t.sink.log_dict("val", loop.step, {"epoch": loop.epoch, "loss": val.loss, **val_metrics})
    signal = t.monitors.end_epoch(loop.step)  # the learning-signal verdict over the epoch's days: one sync
    train_loss = float(epoch_sums[0] / max(loop.batches, 1))
    record = {"epoch": loop.epoch, "wall_s": wall, "train_loss": train_loss, "days": loop.batches}
    record |= {"stock_days_per_s": stock_days / wall, **signal, **t.monitors.counters()}
    t.sink.log_dict("epoch", loop.step, record)
    t.monitors.abort_without_signal(loop.step)  # after the epoch record, so the report names the failing t's
    value = select_value(val_metrics, cfg)
    progress.epoch_done(loop.epoch, value)
    if keeps_epoch(value, loop.best_value, cfg):
        loop.best_value, loop.best_epoch, t.best_state = value, loop.epoch, copy.deepcopy(t.average.state_dict())
    running.zero_()
    loop.epoch, loop.batches = loop.epoch + 1, 0
    loop.stock_days, loop.epoch_stock_days = loop.stock_days + loop.epoch_stock_days, 0


def checkpoint_or_stop(t: Training, running: torch.Tensor, stop: StopRequest | None, due: bool) -> None:
    """Write a checkpoint when one is ``due`` or SIGTERM came (to any rank: under DDP that question is an
    all-reduce, the second sync of a DDP step); after SIGTERM's checkpoint, stop with :class:`Preempted`."""
    stopping = stop is not None and any_rank(stop.requested, t.world, t.device)
    if not (due or stopping):
        return
    path = save_checkpoint(t, running)
    if stopping:
        raise Preempted(f"SIGTERM at step {t.loop.step}: checkpoint {path} written; rerun with --resume auto")


def save_checkpoint(t: Training, running: torch.Tensor) -> Path:
    """Every rank calls it (the running sums are all-reduced into the checkpoint); rank 0 writes."""
    loop, world = t.loop, t.world
    saved = replace(
        loop,
        running=all_sum(running, world).tolist(),
        epoch_stock_days=sum_count(loop.epoch_stock_days, world, t.device),
        stock_days=sum_count(loop.stock_days, world, t.device),
    )
    if not world.is_main:
        return checkpoint_path(checkpoints_root(t.run.path), loop.step)
    state = training_state(t.cfg, saved, t.optimizer, t.scheduler, t.monitors, t.run.file("events.jsonl"))
    best = t.best_state if loop.best_epoch >= 0 else None
    return write_checkpoint(t.cfg, t.run.path, t.model, best, t.average, state)


def keeps_epoch(value: float, best_value: float, cfg: Config) -> bool:
    """Whether this epoch's weights replace the kept ones: a better validation value, or every epoch with
    ``train.select_epoch: last``. The best epoch's validation score is picked on the days it is read on, and
    is optimistic for it (on the S&P folds by about 0.008 of 5-day RankIC, docs/experiments.md); the last
    epoch of a fixed count leaves those days an honest score, for comparing models there."""
    return cfg.train.select_epoch == "last" or value > best_value


def select_value(metrics: dict[str, float], cfg: Config) -> float:
    """The validation value an epoch is selected by (``-inf`` where it is not finite: never selected)."""
    value = metrics[f"{cfg.train.select_metric}_{cfg.train.select_horizon}d"]
    return value if math.isfinite(value) else -math.inf
