"""Judging a run: the objectives that need its predictions (no NaN, RankIC above noise, paired wins over baselines)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from atft.errors import AtftError
from atft.metrics.finance import daily_rank_ic
from atft.metrics.inference import Inference, paired_difference
from atft.report.health import objective, of_kind
from atft.report.read import NO_PREDICTIONS, Run, SplitRows

Metrics = dict[str, float]


class ObjectivesFailed(AtftError):
    """At least one objective of the report FAILed (``atft report --check``)."""

    exit_code = 1


def _non_finite(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def no_nan(run: Run) -> dict[str, Any]:
    """Non-finite numbers in the train records, non_finite health records and model predictions; each must be 0."""
    train = of_kind(run.records, "train")
    bad = [(f"events.jsonl train step {r.get('step')} {k}", 1) for r in train for k, v in r.items() if _non_finite(v)]
    bad += [
        (f"events.jsonl health step {r.get('step')} non_finite: {r.get('message', '')}", 1)
        for r in of_kind(run.records, "health")
        if r.get("name") == "non_finite"
    ]
    for split, rows in run.splits.items():
        for name, column in rows.columns.items():
            if name.startswith("model_") and (n := int((~np.isfinite(column)).sum())):
                bad.append((f"predictions.parquet {split} {name} ({n} rows)", n))
    missing = [] if train else ["events.jsonl has no train records"]
    if not run.splits:
        missing.append(NO_PREDICTIONS if not run.evaluated else "predictions.parquet has no val or test rows")
    count = sum(n for _, n in bad)
    listed = "; ".join(where for where, _ in bad[:5]) + (f"; ... {len(bad) - 5} more" if len(bad) > 5 else "")
    parts = ([f"non-finite: {listed}"] if bad else []) + missing
    detail = "; ".join(parts) or f"{len(train)} train records and every model prediction finite"
    return objective("no_nan", 0, count if bad or not missing else math.nan, not parts, detail)


def _test_metrics(report: dict[str, Any], run: Run, source: str, h: int) -> tuple[Metrics | None, str]:
    """The test metrics of ``source`` at ``h``, or None and what is missing."""
    if (why := run.missing("test")) is not None:
        return None, why
    if (why := report["not_evaluated"].get("test", {}).get(f"{source}_{h}d")) is not None:
        return None, f"test {source}_{h}d not evaluated: {why}"
    found = report["metrics"]["test"].get(source, {}).get(f"{h}d")
    return (found, "") if found is not None else (None, f"predictions.parquet has no {source}_{h}d column")


def paired_rank_ic(rows: SplitRows, a: str, b: str, h: int) -> Inference:
    """The daily RankIC of source ``a`` minus ``b`` at ``h`` on the days both score, with overlap-correct errors:
    what "a beats b" is judged on (a paired test; a point comparison of two means would ignore that both
    move with the same days)."""
    target = rows.columns[f"target_{h}d"]
    first, second = (daily_rank_ic(rows.day, rows.columns[f"{s}_{h}d"], target) for s in (a, b))
    return paired_difference(first.days, first.values, second.days, second.values, horizon=h).inference


def test_objectives(report: dict[str, Any], run: Run) -> list[dict[str, Any]]:
    cfg = run.cfg
    h, t_min, floor = cfg.report.horizon, cfg.report.min_rank_ic_t, cfg.report.min_dispersion_ratio
    model, why = _test_metrics(report, run, "model", h)
    if model is None:
        names = ["rank_ic_positive", *(f"beats_{b}" for b in cfg.report.beat_baselines), "dispersion_ratio"]
        return [objective(n, math.nan, math.nan, False, why) for n in names]
    rank_ic, t = model["rank_ic"], model["rank_ic_t"]
    detail = f"test RankIC at {h}d = {rank_ic:.4g} (must be > 0), t = {t:.3g} (must be >= {t_min:g})"
    out = [objective("rank_ic_positive", t_min, t, rank_ic > 0 and t >= t_min, detail)]
    paired_min = cfg.report.min_paired_t
    for baseline in cfg.report.beat_baselines:
        other, why = _test_metrics(report, run, baseline, h)
        if other is None:
            out.append(objective(f"beats_{baseline}", paired_min, math.nan, False, why))
            continue
        diff = paired_rank_ic(run.splits["test"], "model", baseline, h)
        detail = (
            f"test daily RankIC at {h}d, model {rank_ic:.4g} - {baseline} {other['rank_ic']:.4g} = {diff.mean:.4g} "
            f"+- {diff.se:.2g} over {diff.n} paired days (overlap-correct): t = {diff.t:.3g} (>= {paired_min:g})"
        )
        out.append(objective(f"beats_{baseline}", paired_min, diff.t, diff.t >= paired_min, detail))
    ratio = model["dispersion_ratio"]
    detail = f"test std(pred)/std(target) at {h}d = {ratio:.4g} (must be >= {floor:g})"
    out.append(objective("dispersion_ratio", floor, ratio, ratio >= floor, detail))
    if (least := cfg.report.min_oracle_fraction) is not None and run.has_oracle(h):
        oracle, why = _test_metrics(report, run, "oracle", h)
        if oracle is None:
            out.append(objective("oracle_fraction", least, math.nan, False, why))
        else:
            fraction = divide(rank_ic, oracle["rank_ic"])
            detail = f"test RankIC at {h}d: model {rank_ic:.4g} / oracle {oracle['rank_ic']:.4g} = {fraction:.3g}"
            out.append(objective("oracle_fraction", least, fraction, fraction >= least, detail))
    return out


def divide(a: float, b: float) -> float:
    return a / b if b != 0 else math.nan


def failed(report: dict[str, Any]) -> list[str]:
    """Names of the objectives that FAILed."""
    return [o["name"] for o in report["objectives"] if not o["passed"]]
