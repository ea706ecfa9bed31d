"""From a checked panel to what the loop iterates: the fold, the day dataset and one sampler per split."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from atft.config import Config
from atft.data.batching import DayDataset, DaySampler
from atft.data.graph import StockGraph
from atft.data.panel import DensePanel
from atft.data.splits import Fold, pick, walk_forward
from atft.errors import DataContractError
from atft.train.faults import shuffle_labels


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


def prepare(cfg: Config, panel: DensePanel, rank: int = 0, world_size: int = 1) -> TrainingData:
    """Build the fold of ``cfg.split.fold``, the dataset (with its stock graph) and the samplers."""
    fold = pick(walk_forward(panel.dates, cfg, calendar=str(panel.source)), cfg.split.fold)
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
