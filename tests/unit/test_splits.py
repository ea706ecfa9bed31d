import itertools

import numpy as np
import pytest

from atft.config import load_config
from atft.data.splits import fold_table, pick, walk_forward
from atft.errors import ConfigError

DAYS = ["split.test_window=days"]


def _calendar(n_days: int, start: str = "2018-01-01") -> np.ndarray:
    return np.busday_offset(np.datetime64(start), np.arange(n_days), roll="forward")


def test_no_training_label_window_reaches_a_validation_or_test_date() -> None:
    sets = [*DAYS, "split.n_folds=3", "split.val_days=40", "split.test_days=30", "split.min_train_days=100"]
    cfg = load_config(None, sets)
    longest = max(cfg.data.horizons)
    folds = walk_forward(_calendar(600), cfg)
    for fold in folds:
        # a label at day t covers t+1..t+h: the last training label must end before the first validation day
        assert max(fold.train) + longest < fold.val.start
        assert max(fold.val) + longest < fold.test.start
        assert set(fold.train).isdisjoint(fold.val) and set(fold.val).isdisjoint(fold.test)
    assert folds[-1].test.stop == 600
    assert [f.test.start for f in folds] == sorted(f.test.start for f in folds)
    # expanding window: later folds train on at least as much
    assert all(len(a.train) < len(b.train) for a, b in itertools.pairwise(folds))


def test_yearly_windows_are_the_calendar_years_that_fit() -> None:
    dates = _calendar(1500)  # 2018-01-01 .. 2023-09
    folds = walk_forward(dates, load_config())
    assert [f.label for f in folds] == ["2020", "2021", "2022", "2023"]  # 2018, 2019: too little training before
    for fold in folds:
        years = set(dates[fold.test].astype("datetime64[Y]").astype(str))
        assert years == {fold.label} and len(fold.test) >= 180
        assert fold.train.start == 0 and len(fold.train) >= 250
    assert folds[-1].test.stop == 1500 and [f.index for f in folds] == [0, 1, 2, 3]
    newest_two = walk_forward(dates, load_config(None, ["split.n_folds=2"]))
    assert [f.label for f in newest_two] == ["2022", "2023"] and newest_two[0].index == 0


def test_a_partial_last_year_shorter_than_min_test_days_is_no_fold() -> None:
    dates = _calendar(783 + 10)  # 2018-2020 and the first 10 trading days of 2021
    assert walk_forward(dates, load_config())[-1].label == "2020"
    assert walk_forward(dates, load_config(None, ["split.min_test_days=5"]))[-1].label == "2021"


def test_rolling_windows_hold_train_days_before_the_purge() -> None:
    cfg = load_config(None, ["split.scheme=rolling", "split.train_days=300"])
    folds = walk_forward(_calendar(1500), cfg)
    assert {len(f.train) for f in folds} == {300}
    assert all(f.val.start - f.train.stop == cfg.purge_days for f in folds)
    with pytest.raises(ConfigError, match=r"needs split\.train_days"):
        load_config(None, ["split.scheme=rolling"])


def test_purge_and_embargo_follow_the_config() -> None:
    cfg = load_config(None, ["split.purge_days=25", "split.embargo_days=30"])
    fold = walk_forward(_calendar(1000), cfg)[0]
    assert fold.val.start - fold.train.stop == 25
    assert fold.test.start - fold.val.stop == 30


def test_too_short_a_calendar_is_a_config_error_saying_what_is_needed() -> None:
    with pytest.raises(ConfigError, match="a fold needs at least 410 days before its test window"):
        walk_forward(_calendar(300), load_config(None, DAYS))
    with pytest.raises(ConfigError, match=r"split\.n_folds=9 with split\.test_window=year"):
        walk_forward(_calendar(1500), load_config(None, ["split.n_folds=9"]))


def test_pick_takes_python_indices_and_names_the_range() -> None:
    folds = walk_forward(_calendar(1500), load_config())
    assert pick(folds, -1) is folds[-1] and pick(folds, 0) is folds[0]
    with pytest.raises(ConfigError, match=r"split.fold = 4: the calendar has 4 fold\(s\); allowed 0..3 or -4..-1"):
        pick(folds, 4)


def test_fold_table_names_dates_and_counts() -> None:
    cfg = load_config(None, [*DAYS, "split.val_days=10", "split.test_days=10", "split.min_train_days=20"])
    dates = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-01") + 100)
    rows = fold_table(walk_forward(dates, cfg), dates)
    assert [r["segment"] for r in rows] == ["train", "val", "test"]
    assert rows[2]["last"] == "2020-04-09" and rows[2]["days"] == 10 and rows[2]["test"] == "days 90-99"
    assert sum(r["days"] for r in rows) == 100 - 40


def test_a_lookback_longer_than_the_training_history_is_a_config_error() -> None:
    """Every training sample needs `data.lookback` days of history inside the shortest training window."""
    sets = [*DAYS, "split.val_days=10", "split.test_days=10", "split.min_train_days=20"]
    dates = _calendar(100)
    assert len(walk_forward(dates, load_config(None, [*sets, "data.lookback=40"]))[0].train) == 40
    with pytest.raises(ConfigError, match=r"data.lookback = 41: .*\(40 of the 100 trading days of p.parquet\)"):
        walk_forward(dates, load_config(None, [*sets, "data.lookback=41"]), calendar="p.parquet")
