import itertools

import numpy as np
import pytest

from atft.config import load_config
from atft.data.splits import fold_table, walk_forward
from atft.errors import ConfigError


def test_no_training_label_window_reaches_a_validation_or_test_date() -> None:
    cfg = load_config(None, ["split.n_folds=3", "split.val_days=40", "split.test_days=30", "split.min_train_days=100"])
    longest = max(cfg.data.horizons)
    folds = walk_forward(600, cfg)
    for fold in folds:
        # a label at day t covers t+1..t+h: the last training label must end before the first validation day
        assert max(fold.train) + longest < fold.val.start
        assert max(fold.val) + longest < fold.test.start
        assert set(fold.train).isdisjoint(fold.val) and set(fold.val).isdisjoint(fold.test)
    assert folds[-1].test.stop == 600
    assert [f.test.start for f in folds] == sorted(f.test.start for f in folds)
    # expanding window: later folds train on at least as much
    assert all(len(a.train) < len(b.train) for a, b in itertools.pairwise(folds))


def test_purge_and_embargo_follow_the_config() -> None:
    cfg = load_config(None, ["split.purge_days=25", "split.embargo_days=30"])
    fold = walk_forward(1000, cfg)[0]
    assert fold.val.start - fold.train.stop == 25
    assert fold.test.start - fold.val.stop == 30


def test_too_short_a_calendar_is_a_config_error_saying_what_is_needed() -> None:
    cfg = load_config(None, [])
    with pytest.raises(ConfigError, match="need at least 530 days"):
        walk_forward(300, cfg)


def test_fold_table_names_dates_and_counts() -> None:
    cfg = load_config(None, ["split.val_days=10", "split.test_days=10", "split.min_train_days=20"])
    dates = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-01") + 100)
    rows = fold_table(walk_forward(100, cfg), dates)
    assert [r["segment"] for r in rows] == ["train", "val", "test"]
    assert rows[2]["last"] == "2020-04-09" and rows[2]["days"] == 10
    assert sum(r["days"] for r in rows) == 100 - 40


def test_a_lookback_longer_than_the_training_history_is_a_config_error() -> None:
    """Every training sample needs `data.lookback` days of history inside the training segment of fold 0."""
    sets = ["split.val_days=10", "split.test_days=10", "split.min_train_days=20"]
    assert len(walk_forward(100, load_config(None, [*sets, "data.lookback=40"]))[0].train) == 40
    with pytest.raises(ConfigError, match=r"data.lookback = 41: .*\(40 of the 100 trading days of p.parquet\)"):
        walk_forward(100, load_config(None, [*sets, "data.lookback=41"]), calendar="p.parquet")
