"""Fire drills: inject one failure on purpose (``faults.*`` in the config) to prove its detector fires.

| switch | injected failure | the detector that must fire |
| --- | --- | --- |
| ``dead_encoder`` | the temporal encoder's output is detached | ``vanishing_gradient`` on the encoder components |
| ``collapse_head`` | every stock gets the same forecast | ``predictions_collapsed`` (degeneracy guard) |
| ``dead_feature=NAME`` | the feature is 0 for every stock | ``dead_input`` naming the feature |
| ``shuffle_labels`` | labels are shuffled across days | ``weak_learning_signal``; ``no_learning_signal`` at epoch end |
| ``nan_at_step=S`` | the loss is NaN at optimizer step S | ``non_finite``, the run stops |
"""

from __future__ import annotations

import dataclasses

import torch

from atft.config import FaultsConfig
from atft.data.batching import DayBatch
from atft.data.panel import DensePanel
from atft.errors import ConfigError
from atft.model import ATFT


class Faults:
    """Applies the configured drills to the model, each training batch and each loss."""

    def __init__(self, cfg: FaultsConfig, model: ATFT, features: list[str]) -> None:
        self.cfg = cfg
        model.detach_encoder = cfg.dead_encoder
        model.collapse_heads = cfg.collapse_head
        self.feature: int | None = None
        if cfg.dead_feature is not None:
            if cfg.dead_feature not in features:
                raise ConfigError(
                    [f"faults.dead_feature = {cfg.dead_feature!r}: not a feature; allowed: {', '.join(features)}"]
                )
            self.feature = features.index(cfg.dead_feature)

    def on_batch(self, batch: DayBatch) -> DayBatch:
        if self.feature is not None:
            batch.x[..., self.feature] = 0.0
            batch.x_mask[..., self.feature] = True
        return batch

    def on_loss(self, loss: torch.Tensor, step: int) -> torch.Tensor:
        if self.cfg.nan_at_step is not None and step == self.cfg.nan_at_step:
            return loss * float("nan")
        return loss


def shuffle_labels(panel: DensePanel, days: range, seed: int) -> DensePanel:
    """A panel whose label rows on ``days`` are permuted across days and stocks: any signal is gone.

    Shuffling across days alone keeps each stock's own labels, and its persistent traits (volatility, drift)
    still rank them; permuting the (day, stock) rows removes that too.
    """
    targets = panel.targets.clone()
    rows = panel.present[days.start : days.stop].nonzero()  # (R, 2) day offset, stock
    rows[:, 0] += days.start
    perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    targets[rows[:, 0], rows[:, 1]] = panel.targets[rows[perm, 0], rows[perm, 1]]
    return dataclasses.replace(panel, targets=targets)
