"""Walk-forward splits over the common trading calendar.

Splits are by calendar date, never per stock: a date is in exactly one segment for every stock, so the
cross-section a model is scored on was never seen in training. Each fold reads

    train | purge | val | embargo | test

A training label at date t covers returns over t+1..t+h, so the purge gap (>= the longest horizon) keeps
every training label window out of the validation dates, and the embargo does the same between validation
(used for model selection) and test. Folds step back from the end of the calendar by ``test_days``; fold 0
is the oldest, and training windows expand from the first date.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atft.config import Config
from atft.errors import ConfigError


@dataclass(frozen=True)
class Fold:
    """Day indices (into the panel's calendar) of one walk-forward fold."""

    index: int
    train: range
    val: range
    test: range

    def segments(self) -> dict[str, range]:
        return {"train": self.train, "val": self.val, "test": self.test}


def walk_forward(n_days: int, cfg: Config, calendar: str = "the calendar") -> list[Fold]:
    """All folds for a calendar of ``n_days`` trading days; too short a calendar is a ConfigError.

    ``calendar`` names where the days come from (the panel file) in that error, so the user knows which input
    is too short for which keys.
    """
    s = cfg.split
    purge, embargo = cfg.purge_days, cfg.embargo_days
    folds = []
    for k in range(s.n_folds):
        test_stop = n_days - (s.n_folds - 1 - k) * s.test_days
        test = range(test_stop - s.test_days, test_stop)
        val = range(test.start - embargo - s.val_days, test.start - embargo)
        train = range(0, val.start - purge)
        folds.append(Fold(k, train, val, test))
    shortest = folds[0].train
    if len(shortest) < s.min_train_days:
        need = s.min_train_days + purge + s.val_days + embargo + s.n_folds * s.test_days
        raise ConfigError(
            [
                f"split: {calendar} has {n_days} trading days, too few for split.n_folds={s.n_folds}, "
                f"val_days={s.val_days}, test_days={s.test_days}, purge={purge}, embargo={embargo} and "
                f"min_train_days={s.min_train_days}: "
                f"fold 0 would train on {len(shortest)} days; need at least {need} days"
            ]
        )
    if cfg.data.lookback > len(shortest):  # no training day would have a full window of history
        raise ConfigError(
            [
                f"data.lookback = {cfg.data.lookback}: longer than the history fold 0 trains on ({len(shortest)} of "
                f"the {n_days} trading days of {calendar}); allowed <= {len(shortest)}, or give a longer panel"
            ]
        )
    return folds


def fold_table(folds: list[Fold], dates: np.ndarray) -> list[dict[str, object]]:
    """One row per fold and segment with its first and last date and its day count (for printing)."""
    rows: list[dict[str, object]] = []
    for fold in folds:
        for name, days in fold.segments().items():
            rows.append(
                {
                    "fold": fold.index,
                    "segment": name,
                    "first": str(dates[days.start]),
                    "last": str(dates[days.stop - 1]),
                    "days": len(days),
                }
            )
    return rows
