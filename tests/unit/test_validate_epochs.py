"""The validation-window score by epochs trained, pooled over fold runs from their val records."""

from __future__ import annotations

import math
from typing import Any

import pytest

from atft.validate.epochs import epoch_scores


def _val(epoch: int, rank_ic: float, se: float, days: int) -> dict[str, Any]:
    return {"kind": "val", "epoch": epoch, "rank_ic_5d": rank_ic, "rank_ic_se_5d": se, "n_days_5d": days}


def _selection(best_epoch: int, rule: str = "best") -> dict[str, Any]:
    return {"kind": "selection", "epoch": 2, "best_epoch": float(best_epoch), "rule": rule}


RUNS = {
    "fold-00-seed-0": [_val(0, 0.01, 0.02, 100), {"kind": "train", "epoch": 0}, _val(1, 0.03, 0.02, 100)],
    "fold-01-seed-0": [_val(0, 0.04, 0.01, 300), _val(1, 0.02, 0.01, 300), _val(2, 0.05, 0.03, 300)],
}


def test_each_row_pools_the_runs_that_trained_that_long_weighted_by_days() -> None:
    rows = epoch_scores(RUNS, [5])["by_epochs"]
    assert [(r["epochs"], r["runs"]) for r in rows] == [(1, 2), (2, 2), (3, 1)]
    first = rows[0]
    assert first["5d"] == pytest.approx((100 * 0.01 + 300 * 0.04) / 400)  # the mean of all 400 days
    # disjoint windows: the folds' errors add as independent ones, each in proportion to its days
    assert first["5d_se"] == pytest.approx(math.hypot(100 * 0.02, 300 * 0.01) / 400)
    assert first["5d_se"] < 0.02, "pooling two folds is surer than the noisier one alone"
    assert rows[2]["5d"] == pytest.approx(0.05) and rows[2]["5d_se"] == pytest.approx(0.03)


def test_the_kept_row_scores_each_run_at_the_epoch_its_selection_names() -> None:
    runs = {
        "fold-00-seed-0": [*RUNS["fold-00-seed-0"], _selection(1)],
        "fold-01-seed-0": [*RUNS["fold-01-seed-0"], _selection(0)],
    }
    picked = epoch_scores(runs, [5])["picked"]
    assert picked["runs"] == {"fold-00-seed-0": 2, "fold-01-seed-0": 1}
    assert picked["rule"] == "best"
    assert picked["5d"] == pytest.approx((100 * 0.03 + 300 * 0.04) / 400)


def test_a_horizon_without_a_finite_score_is_left_out_of_the_mean_not_counted_as_zero() -> None:
    runs = {"a": [_val(0, math.nan, math.nan, 100)], "b": [_val(0, 0.02, 0.01, 50)]}
    row = epoch_scores(runs, [5, 20])["by_epochs"][0]
    assert row["5d"] == pytest.approx(0.02) and row["5d_se"] == pytest.approx(0.01)
    assert math.isnan(row["20d"]) and math.isnan(row["20d_se"])


def test_a_validation_without_finished_runs_has_no_rows() -> None:
    scores = epoch_scores({}, [1, 5])
    assert scores["by_epochs"] == [] and scores["picked"]["runs"] == {}
