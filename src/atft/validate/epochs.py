"""A validation's score on its validation windows after each epoch, pooled over fold runs: where ``train.epochs``
is chosen.

Why: with ``train.select_epoch=best`` each fold run keeps the epoch that scored best on its validation window
and is then scored on those same days, so the validation's ``--split val`` score carries that pick (on the S&P
panel about a fifth of the default model's 5-day score). Every epoch's score is already in each run's
``events.jsonl`` (its ``val`` records); pooled at a fixed number of epochs over the folds, they are unpicked
scores. The row with the best score names the ``train.epochs`` to run with ``train.select_epoch=last``, a
choice made once across all folds instead of once per fold.

Pooling: a fold's val record holds the mean daily RankIC over its ``n_days`` validation days and its
Newey-West error. The folds' windows are disjoint, so the pooled mean weights each fold by its days and the
errors add as independent: ``se = sqrt(sum((n_f se_f)^2)) / sum(n_f)``. With several seeds each run counts on
its own (this is the seeds' average score, not their ensemble's). Runs with fewer epochs than a row are not
in that row; ``runs`` says how many are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def epoch_scores(records: Mapping[str, list[dict[str, Any]]], horizons: list[int]) -> dict[str, Any]:
    """From each run's records (by run name): ``{"by_epochs": [...], "picked": {...}}``.

    ``by_epochs``: one row per number of epochs trained (1 = after the first): ``epochs``, ``runs`` and per
    horizon the pooled validation RankIC ``"<h>d"`` with its error ``"<h>d_se"``. ``picked``: the epochs each
    run kept (``runs``: run name -> epochs trained when kept), the selection rule, and the pooled score of
    the kept epochs in the same form (what ``atft report ... --split val`` scores).
    """
    val = {name: _val_by_epoch(recs) for name, recs in records.items()}
    n_epochs = max((max(v, default=-1) + 1 for v in val.values()), default=0)
    by_epochs = []
    for epoch in range(n_epochs):
        at = [v[epoch] for v in val.values() if epoch in v]
        by_epochs.append({"epochs": epoch + 1, "runs": len(at), **_pooled(at, horizons)})
    kept: dict[str, int] = {}
    rules: set[str] = set()
    for name, recs in records.items():
        selection = next((r for r in reversed(recs) if r["kind"] == "selection"), None)
        if selection is not None and math.isfinite(selection.get("best_epoch", math.nan)):
            kept[name] = int(selection["best_epoch"]) + 1
            rules.add(str(selection.get("rule", "best")))
    at_kept = [val[name][epochs - 1] for name, epochs in kept.items() if epochs - 1 in val[name]]
    picked = {"runs": kept, "rule": "/".join(sorted(rules)), **_pooled(at_kept, horizons)}
    return {"by_epochs": by_epochs, "picked": picked}


def _val_by_epoch(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """{epoch (from 0): its val record}."""
    return {int(r["epoch"]): r for r in records if r["kind"] == "val" and r.get("epoch") is not None}


def _pooled(records: list[dict[str, Any]], horizons: list[int]) -> dict[str, float]:
    """Per horizon, the days-weighted mean of the records' RankIC and its error (disjoint windows, independent)."""
    out: dict[str, float] = {}
    for h in horizons:
        parts = [
            (r[f"n_days_{h}d"], r[f"rank_ic_{h}d"], r.get(f"rank_ic_se_{h}d", math.nan))
            for r in records
            if f"rank_ic_{h}d" in r and math.isfinite(r[f"rank_ic_{h}d"]) and r.get(f"n_days_{h}d", 0) > 0
        ]
        days = sum(n for n, _, _ in parts)
        mean = sum(n * m for n, m, _ in parts) / days if days else math.nan
        se = math.sqrt(sum((n * s) ** 2 for n, _, s in parts)) / days if days else math.nan
        out |= {f"{h}d": mean, f"{h}d_se": se}
    return out
