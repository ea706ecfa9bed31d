"""Everything a run trains with, built once before the first step.

:func:`prepare`: from a checked panel and its fold to what the loop iterates (the day dataset and one
sampler per split). :func:`build_training`: the model, loss, optimizer and schedule, weight average and
monitors, seeded, past a pre-flight step or restored from a checkpoint -- the :class:`Training` that
:func:`atft.train.loop.fit` carries.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch

from atft.config import Config
from atft.data.batching import DayBatch, DayDataset, DaySampler
from atft.data.graph import StockGraph
from atft.data.panel import DensePanel
from atft.data.splits import Fold
from atft.errors import DataContractError, TrainingFailed
from atft.health.monitors import Monitors
from atft.model import ATFT, ATFTOutput
from atft.runs.directory import RunDir
from atft.telemetry.sinks import MetricSink
from atft.train.averaging import NoAverage, WeightAverage, weight_average
from atft.train.checkpoint import Checkpoint
from atft.train.distributed import World
from atft.train.faults import Faults, shuffle_labels
from atft.train.losses import DayLoss
from atft.train.resume import LoopState, restore
from atft.train.runtime import autocast, resolve_device
from atft.train.targets import daily_rank_sums


@dataclass
class TrainingData:
    """Everything the loop needs from the data side."""

    panel: DensePanel
    dataset: DayDataset
    fold: Fold
    samplers: dict[str, DaySampler]  # train (shuffled per epoch), val and test (chronological)
    target_scale: torch.Tensor  # (H,) std of the training targets per horizon

    def dropped_days(self) -> dict[str, int]:
        return {name: s.dropped_days for name, s in self.samplers.items()}


def target_scale(panel: DensePanel, eligible: torch.Tensor, days: range) -> torch.Tensor:
    """Std per horizon of the labels the model trains on (eligible stocks of the training days)."""
    y = panel.targets[days.start : days.stop][eligible[days.start : days.stop]].double()  # (rows, H)
    valid = torch.isfinite(y)
    count = valid.sum(0).clamp(min=1)
    mean = torch.where(valid, y, 0.0).sum(0) / count
    var = (torch.where(valid, y - mean, 0.0) ** 2).sum(0) / count
    scale = var.sqrt().float()
    if not bool((scale > 0).all()):
        raise DataContractError(
            [f"training targets have zero spread for horizons {panel.horizons}: {scale.tolist()}"], panel.source
        )
    return scale


def prepare(cfg: Config, panel: DensePanel, fold: Fold, rank: int = 0, world_size: int = 1) -> TrainingData:
    """The dataset of ``panel`` (with its stock graph) and the samplers of ``fold``'s splits."""
    if cfg.loss.target == "rank_sum":
        panel = daily_rank_sums(panel, fold.train)
    if cfg.faults.shuffle_labels:
        panel = shuffle_labels(panel, fold.train, cfg.seed)
    graph = StockGraph(panel.returns, panel.sector_id, panel.market_id, cfg.graph)
    dataset = DayDataset(panel, graph, cfg)
    counts = dataset.eligible.sum(1)
    minimum, cap = cfg.data.min_stocks_per_day, cfg.data.max_stocks_per_batch
    samplers = {
        "train": DaySampler(
            counts,
            fold.train,
            minimum,
            cap,
            shuffle=True,
            seed=cfg.seed,
            rank=rank,
            world_size=world_size,
            drop_last=True,
        ),
        "val": DaySampler(counts, fold.val, minimum, cap, shuffle=False),
        "test": DaySampler(counts, fold.test, minimum, cap, shuffle=False),
    }
    for name, sampler in samplers.items():
        if len(sampler.items) == 0:
            raise DataContractError(
                [
                    f"the {name} split has no day with >= data.min_stocks_per_day="
                    f"{cfg.data.min_stocks_per_day} eligible stocks"
                ],
                panel.source,
            )
    return TrainingData(panel, dataset, fold, samplers, target_scale(panel, dataset.eligible, fold.train))


def build_model(cfg: Config, panel: DensePanel, target_scale: torch.Tensor) -> ATFT:
    """The model ``cfg`` describes for ``panel``'s features, market inputs and horizons."""
    return ATFT(cfg.model, len(panel.feature_names), len(panel.market_feature_names), panel.horizons, target_scale)


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


def forward(model: ATFT, batch: DayBatch, loss_fn: DayLoss) -> tuple[ATFTOutput, torch.Tensor, dict[str, torch.Tensor]]:
    """The model's forecasts of one day batch and their loss (total and terms)."""
    out = model(batch.x, batch.x_mask, batch.market, batch.market_mask, batch.edge_index, batch.edge_attr)
    loss, terms = loss_fn(out.quantiles, out.point, batch.y, batch.y_mask, model.target_scale, batch.sector)
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
        _, loss, _ = forward(model, data.dataset[item].to(device), loss_fn)
    if not torch.isfinite(loss):
        raise TrainingFailed(f"pre-flight: the loss of day {data.panel.dates[item.day]} is {float(loss)}")
    loss.backward()
    norms = component_grad_norms(model)  # a component without gradient is named by the monitor at step 1
    model.zero_grad(set_to_none=True)
    return {"loss": float(loss.detach()), **{f"grad_norm/{k}": v for k, v in norms.items()}}


@dataclass
class Training:
    """Everything one run trains with, built once (:func:`build_training`) and carried through ``fit``.

    ``loop`` is where training stands (a resumed run's comes from its checkpoint); ``best_state`` the weights
    of the best epoch so far (as evaluated: the weight average's when it is on).
    """

    cfg: Config
    data: TrainingData
    model: ATFT
    loss_fn: DayLoss
    faults: Faults
    optimizer: torch.optim.AdamW
    scheduler: torch.optim.lr_scheduler.LambdaLR
    average: WeightAverage | NoAverage
    monitors: Monitors
    device: torch.device
    precision: str
    world: World
    run: RunDir
    sink: MetricSink
    loop: LoopState
    best_state: dict[str, torch.Tensor]
    started: float = field(default_factory=time.perf_counter)
    params: list[torch.nn.Parameter] = field(init=False)  # the model's, listed once (every step walks them)

    def __post_init__(self) -> None:
        self.params = list(self.model.parameters())


def build_training(
    cfg: Config, data: TrainingData, run: RunDir, sink: MetricSink, resume: Checkpoint | None, world: World
) -> Training:
    """The model, loss, optimizer, schedule, weight average and monitors of a run, seeded by ``cfg.seed``;
    a fresh run first passes the pre-flight (logged as the ``preflight`` record), a resumed one takes back
    the state of ``resume`` (exactly: :mod:`atft.train.resume`)."""
    torch.manual_seed(cfg.seed)
    device, precision = resolve_device(cfg.train), cfg.train.precision
    model = build_model(cfg, data.panel, data.target_scale).to(device)
    faults = Faults(cfg.faults, model, data.panel.feature_names)  # before the pre-flight: a drill shows there
    loss_fn = DayLoss(cfg.loss, data.panel.horizons, cfg.model.quantiles, n_sectors=len(data.panel.sectors))
    if resume is None:
        sink.log_dict("preflight", 0, preflight(model, data, loss_fn, device, precision))
    monitors = Monitors(cfg, model, sink, data.panel.feature_names, world)
    steps_per_epoch = max(1, len(data.samplers["train"]) // cfg.train.accumulate_days)
    optimizer, scheduler = build_optimizer(cfg, model, steps_per_epoch)
    average = weight_average(model, cfg.train.weight_average)
    loop, best = LoopState(), copy.deepcopy(model.state_dict())
    if resume is not None:
        loop = restore(resume, model, optimizer, scheduler, monitors, average, world)
        best = resume.best if resume.best is not None else best
    return Training(
        cfg,
        data,
        model,
        loss_fn,
        faults,
        optimizer,
        scheduler,
        average,
        monitors,
        device,
        precision,
        world,
        run,
        sink,
        loop,
        best,
    )
