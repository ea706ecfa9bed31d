"""Walk-forward splits over the common trading calendar.

Splits are by calendar date, never per stock: a date is in exactly one segment for every stock, so the
cross-section a model is scored on was never seen in training. Each fold reads

    train | purge | val | embargo | test

A training label at date t covers returns over t+1..t+h, so the purge gap (>= the longest horizon) keeps
every training label window out of the validation dates, and the embargo does the same between validation
(used for model selection) and test.

Test windows (``split.test_window``) are calendar years (``year``: one fold per year of the calendar whose
fold fits, a year with fewer than ``split.min_test_days`` trading days -- a partial last year -- left out)
or blocks of ``split.test_days`` days stepping back from the calendar's end (``days``). Training windows
(``split.scheme``) expand from the first date (``expanding``) or hold the last ``split.train_days`` days
before the purge (``rolling``). A fold fits when its training window has ``split.min_train_days`` days.
``split.n_folds`` keeps the newest n folds; fold 0 is the oldest, and ``split.fold`` picks one the way a
Python index does (-1, the default, is the newest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atft.config import Config
from atft.errors import ConfigError


@dataclass(frozen=True)
class Fold:
    """Day indices (into the panel's calendar) of one walk-forward fold, and its name (the test year or days)."""

    index: int
    train: range
    val: range
    test: range
    label: str = ""

    def segments(self) -> dict[str, range]:
        return {"train": self.train, "val": self.val, "test": self.test}


def _test_windows(dates: np.ndarray, cfg: Config) -> list[tuple[range, str]]:
    """Candidate test windows, oldest first, each with its label."""
    s, n_days = cfg.split, len(dates)
    if s.test_window == "days":
        count = s.n_folds or 1
        stops = [n_days - (count - 1 - k) * s.test_days for k in range(count)]
        return [(range(stop - s.test_days, stop), f"days {stop - s.test_days}-{stop - 1}") for stop in stops]
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    starts = np.flatnonzero(np.diff(years, prepend=years[0] - 1))
    stops = [*starts[1:].tolist(), n_days]
    windows = [(range(a, b), str(years[a])) for a, b in zip(starts.tolist(), stops, strict=True)]
    return [(days, label) for days, label in windows if len(days) >= s.min_test_days]


def _fold(index: int, test: range, label: str, cfg: Config) -> Fold:
    s = cfg.split
    val = range(test.start - cfg.embargo_days - s.val_days, test.start - cfg.embargo_days)
    train_stop = val.start - cfg.purge_days
    train_start = 0 if s.scheme == "expanding" else max(0, train_stop - (s.train_days or 0))
    return Fold(index, range(train_start, max(train_start, train_stop)), val, test, label)


def walk_forward(dates: np.ndarray, cfg: Config, calendar: str = "the calendar") -> list[Fold]:
    """Every fold of ``cfg.split`` over the trading days ``dates`` (ascending ``datetime64[D]``), oldest first.

    ``calendar`` names where the days come from (the panel file) in errors, so the user knows which input is
    too short for which keys.

    Raises:
        ConfigError: no fold fits, fewer than ``split.n_folds`` fit, or ``data.lookback`` is longer than the
            shortest training window.
    """
    s = cfg.split
    candidates = [_fold(0, test, label, cfg) for test, label in _test_windows(dates, cfg)]
    fits = [f for f in candidates if f.val.start >= 0 and len(f.train) >= s.min_train_days]
    if s.test_window == "days" and len(fits) < len(candidates):
        fits = []  # day windows are asked for by count: all of them fit, or the calendar is too short
    if s.n_folds is not None and s.test_window == "year":
        fits = fits[-s.n_folds :] if len(fits) >= s.n_folds else []
    if not fits:
        raise ConfigError([_too_short(len(dates), cfg, calendar, candidates)])
    folds = [Fold(k, f.train, f.val, f.test, f.label) for k, f in enumerate(fits)]
    shortest = min(len(f.train) for f in folds)
    if cfg.data.lookback > shortest:  # no training day would have a full window of history
        raise ConfigError(
            [
                f"data.lookback = {cfg.data.lookback}: longer than the shortest training window ({shortest} of "
                f"the {len(dates)} trading days of {calendar}); allowed <= {shortest}, or give a longer panel"
            ]
        )
    return folds


def _too_short(n_days: int, cfg: Config, calendar: str, candidates: list[Fold]) -> str:
    s = cfg.split
    window = f"test_days={s.test_days}" if s.test_window == "days" else "test_window=year"
    wanted = f"split.n_folds={s.n_folds}" if s.n_folds is not None else "one fold"
    longest = max((len(f.train) for f in candidates if f.val.start >= 0), default=0)
    need = s.min_train_days + cfg.purge_days + s.val_days + cfg.embargo_days
    return (
        f"split: {calendar} has {n_days} trading days, too few for {wanted} with split.{window}, "
        f"val_days={s.val_days}, purge={cfg.purge_days}, embargo={cfg.embargo_days} and "
        f"min_train_days={s.min_train_days}: the longest training window that fits has {longest} days; "
        f"a fold needs at least {need} days before its test window"
    )


def pick(folds: list[Fold], index: int) -> Fold:
    """``folds[index]`` (negative counts from the newest), or a ConfigError naming ``split.fold`` and the range."""
    n = len(folds)
    if not -n <= index < n:
        raise ConfigError([f"split.fold = {index}: the calendar has {n} fold(s); allowed 0..{n - 1} or -{n}..-1"])
    return folds[index]


def fold_table(folds: list[Fold], dates: np.ndarray) -> list[dict[str, object]]:
    """One row per fold and segment with its first and last date and its day count (for printing)."""
    rows: list[dict[str, object]] = []
    for fold in folds:
        for name, days in fold.segments().items():
            rows.append(
                {
                    "fold": fold.index,
                    "test": fold.label,
                    "segment": name,
                    "first": str(dates[days.start]),
                    "last": str(dates[days.stop - 1]),
                    "days": len(days),
                }
            )
    return rows
