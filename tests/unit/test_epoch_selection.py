"""Which epoch's weights a run keeps: the best on val, or the last of a fixed count (val left unpicked)."""

from __future__ import annotations

import math

import pytest

from atft.config import Config
from atft.train.loop import keeps_epoch

VALUES = [0.03, 0.05, float("-inf"), 0.04]  # an epoch's validation value; -inf where it was not finite


def _kept(rule: str) -> int:
    cfg = Config.model_validate({"train": {"select_epoch": rule}})
    kept, best = -1, -math.inf
    for epoch, value in enumerate(VALUES):
        if keeps_epoch(value, best, cfg):
            kept, best = epoch, value
    return kept


@pytest.mark.parametrize(("rule", "epoch"), [("best", 1), ("last", 3)])
def test_best_keeps_the_best_value_and_last_keeps_the_final_epoch(rule: str, epoch: int) -> None:
    assert _kept(rule) == epoch
