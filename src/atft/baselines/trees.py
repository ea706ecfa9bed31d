"""Gradient-boosted trees (LightGBM) on the model's own per-stock inputs: the strongest simple competitor.

In Qlib's benchmark tables LightGBM on hand-made features beats most deep models, so a deep model that does not
beat it on the same features and days has not shown that its depth pays.

What it sees is the ridge's design: one row per (day, stock) of the fold's training days, the per-stock
features on that day (the model's last lookback step), missing values left as NaN (LightGBM learns on which
side of each split they go). One regressor per horizon.

Labels are the target net of its day's cross-sectional mean, in units of the training std per horizon, and
forecasts are scaled back (return units, net of the day's mean). The features are z-scored per date, so no
split can tell one day from another and the day's mean return (the market's move) is pure noise to an L2 fit:
with raw targets on the demo fold early stopping halted after 2-39 rounds and the validation RankIC at 5d / 10d
was 0.062 / 0.057, against 0.070 / 0.078 net of the day's mean. The ranking within a day, all that RankIC
measures, is the same. (Qlib's Alpha158 handler likewise normalises its training labels per date.)

Early stopping watches the L2 loss on the fold's validation rows and keeps the best round; test rows are never
passed in. Deterministic: ``deterministic=True``, row-wise histograms, one seed, and a fixed thread count (the
sums of a histogram depend on how rows are split between threads, so the same data, seed and thread count give
the same trees, bit for bit).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import torch
from torch import Tensor

from atft.data.panel import DensePanel
from atft.errors import DataContractError

ROWS_PER_THREAD = 100_000
"""With ``num_threads: 0``, one thread per this many training rows (at most torch's): below it a thread's share
of a histogram is too small to pay for the barrier it waits at."""


@dataclass(frozen=True)
class TreeParams:
    """LightGBM settings of the baseline, close to Qlib's but sized for hundreds of thousands of rows of a weak
    signal. Labels are in units of their training std, so the penalties mean the same on any panel.

    Attributes:
        learning_rate: 0.05. Small steps, so early stopping picks the number of trees finely (Qlib uses 0.2
            with 1,000 rounds on Alpha158's millions of rows; a weak signal overfits in a few large steps).
        num_leaves: 15. A weak signal in a few hundred thousand rows supports few splits per tree: on the demo
            fold's validation days the mean RankIC over the four horizons was 0.064 with 15 leaves, 0.065 with
            7, 0.057 with 31 and 0.051 with 63 (Qlib's 210 leaves come with an L2 penalty of 581).
        min_data_in_leaf: 200. A leaf's value is a mean of at least 200 labels, so its noise (0.07 label std)
            stays near the size of the signal instead of far above it.
        feature_fraction: 0.8. Each tree sees 80% of the features: trees decorrelate (Qlib 0.89).
        bagging_fraction, bagging_freq: 0.8, 1. Each tree sees 80% of the rows, redrawn every tree (Qlib 0.88).
        lambda_l1: 1.0. A leaf whose residuals sum to under 1 label std is set to 0: leaves of noise add nothing.
        lambda_l2: 10.0. Shrinks a 200-row leaf by 5%, a 20,000-row one by 0.05%: a light pull on small leaves.
        max_rounds: 500. The cap; early stopping ends sooner (14-84 rounds on the demo fold).
        early_stopping_rounds: 50. Rounds without a better validation loss before stopping (Qlib's value).
        max_train_rows: 2,000,000. More training rows are subsampled (seeded) to this many: 2M rows x 44
            features is 350 MB of float32 plus LightGBM's 88 MB of bins, and more rows add little to a
            regressor of 15 leaves.
        num_threads: 0 = as many as torch uses in this process (``torch.get_num_threads()``, which follows
            ``OMP_NUM_THREADS``), but at most one per 100,000 training rows. Never more threads than free
            cores: LightGBM's OpenMP threads spin at its many barriers, and with a core short (two threads on a
            busy 2-core machine) 100 rounds on 170,000 rows took 106 s instead of 4 s on one thread. Results
            are identical for the same thread count; fix it to compare runs across machines.
        seed: 0. Seeds the bagging, the feature sampling and the subsample.
    """

    learning_rate: float = 0.05
    num_leaves: int = 15
    min_data_in_leaf: int = 200
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l1: float = 1.0
    lambda_l2: float = 10.0
    max_rounds: int = 500
    early_stopping_rounds: int = 50
    max_train_rows: int = 2_000_000
    num_threads: int = 0
    seed: int = 0

    def lightgbm(self, rows: int) -> dict[str, object]:
        """The parameters as LightGBM reads them, for a fit on ``rows`` training rows."""
        threads = self.num_threads or min(torch.get_num_threads(), max(1, rows // ROWS_PER_THREAD))
        return {
            "objective": "regression",
            "metric": "l2",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l1": self.lambda_l1,
            "lambda_l2": self.lambda_l2,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": threads,
            "verbosity": -1,
        }


@dataclass(frozen=True, eq=False)
class TreeFit:
    """One booster per horizon, the label scale per horizon, and what the fit cost."""

    boosters: list[lgb.Booster]
    scale: list[float]
    best_rounds: list[int]
    train_rows: int  # rows fitted on (after the subsample)
    available_rows: int  # training rows before the subsample
    seconds: float

    def predict(self, panel: DensePanel, days: Tensor, stocks: Tensor) -> Tensor:
        """(R, H) float32 forecasts for the rows (days, stocks), in return units net of the day's mean."""
        x = panel.features[days, stocks].numpy()  # (R, F)
        out = np.empty((len(x), len(self.boosters)), dtype=np.float32)
        if len(x):
            for k, (booster, scale, rounds) in enumerate(zip(self.boosters, self.scale, self.best_rounds, strict=True)):
                out[:, k] = np.asarray(booster.predict(x, num_iteration=rounds)) * scale
        return torch.from_numpy(out)


def net_of_day_mean(y: Tensor, day: Tensor) -> Tensor:
    """(R, H) float64 ``y`` minus the mean of its day's finite values, per horizon; NaN stays NaN."""
    _, group = torch.unique(day, return_inverse=True)  # (R,) day number among the rows' days
    ok = torch.isfinite(y)
    y = y.double()
    sums = torch.zeros(int(group.max()) + 1 if len(y) else 0, y.shape[1], dtype=y.dtype)
    counts = torch.zeros_like(sums)
    sums.index_add_(0, group, torch.where(ok, y, 0.0))
    counts.index_add_(0, group, ok.double())
    return y - sums[group] / counts[group]


def _subsample(n: int, cap: int, seed: int) -> np.ndarray | None:
    """Sorted row indices of a seeded sample of ``cap`` of ``n`` rows, or None when all are kept."""
    if n <= cap:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False))


def _rows(
    panel: DensePanel, days: Tensor, stocks: Tensor, split: str, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(features (R, F) float32, labels net of the day's mean (R, H) float64) of the rows, or of the rows
    ``keep`` of them: the day's mean is over every row, the features are gathered for the kept ones only."""
    if len(days) == 0:
        raise DataContractError([f"the lightgbm baseline has no {split} rows to fit on"], panel.source)
    labels = net_of_day_mean(panel.targets[days, stocks], days).numpy()
    if keep is not None:
        index = torch.from_numpy(keep)
        days, stocks, labels = days[index], stocks[index], labels[keep]
    return panel.features[days, stocks].numpy(), labels


def _labelled(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows with a finite label (no copy when every row has one)."""
    ok = np.isfinite(y)
    return (x, y) if ok.all() else (x[ok], y[ok])


def fit_trees(
    panel: DensePanel, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor], params: TreeParams
) -> TreeFit:
    """Fit one LightGBM regressor per horizon on the ``train`` rows (days, stocks), stopping early on ``val``.

    Raises:
        DataContractError: no training or validation row, or a horizon without a label in one of them.
    """
    started = time.perf_counter()
    available = len(train[0])
    x_train, y_train = _rows(panel, *train, "training", _subsample(available, params.max_train_rows, params.seed))
    x_val, y_val = _rows(panel, *val, "validation")
    settings = params.lightgbm(len(x_train))
    boosters, scales, rounds = [], [], []
    for k, h in enumerate(panel.horizons):
        xt, yt = _labelled(x_train, y_train[:, k])
        xv, yv = _labelled(x_val, y_val[:, k])
        scale = float(yt.std()) if len(yt) else 0.0
        if scale == 0.0 or len(yv) == 0:
            raise DataContractError(
                [f"target_{h}d: the lightgbm baseline needs labels that differ within a day on the training days "
                 f"and a label on a validation day; it has {len(yt)} training rows (spread {scale:.3g}) and "
                 f"{len(yv)} validation rows"],
                panel.source,
            )  # fmt: skip
        train_set = lgb.Dataset(xt, yt / scale, params={"verbosity": -1}, free_raw_data=True)
        val_set = lgb.Dataset(xv, yv / scale, reference=train_set)
        booster = lgb.train(
            settings,
            train_set,
            num_boost_round=params.max_rounds,
            valid_sets=[val_set],
            callbacks=[lgb.early_stopping(params.early_stopping_rounds, first_metric_only=True, verbose=False)],
        )
        boosters.append(booster)
        scales.append(scale)
        rounds.append(booster.best_iteration)
    return TreeFit(boosters, scales, rounds, len(x_train), available, time.perf_counter() - started)
