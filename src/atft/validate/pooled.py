"""The pooled out-of-sample report of a validation: every fold's test days as one sample, with honest errors.

Why pool: one test window of a few months says little (the oracle's own RankIC on 115 days has a standard
error of about a fifth of its value). The folds' test windows never overlap, so their days together are one
long out-of-sample record, each day forecast by a model that never saw it.

What is measured (``report.json``; ``report.md`` renders it; the statistics are :mod:`atft.metrics`'s, the
one definition of each):

* ``pooled[source]["<h>d"]``: :func:`~atft.metrics.finance.evaluate` over all test days -- mean IC and RankIC
  with their Newey-West standard errors (overlapping h-day returns make the daily values autocorrelated),
  t, 95% interval and ICIR; the long-short Sharpe gross and net of ``train.cost_bps``, with its error. With
  several seeds, ``model`` is the seed-averaged forecast (the ensemble one would ship); each seed alone is in
  ``seeds``.
* ``paired[baseline]["<h>d"]``: the daily RankIC of the model minus the baseline's, on the days both have,
  with its overlap-correct error, t and p: "beats X" means a difference above ``report.min_paired_t`` errors.
* ``per_fold`` and ``per_year``: the same RankIC statistics per fold and per calendar year;
  ``quantiles["<h>d"]``: mean forward return per prediction decile (monotone when the ranking is);
  ``oracle_fraction["<h>d"]`` (synthetic panels): pooled model RankIC over the oracle's, with a block-bootstrap
  interval over days (blocks of at least h days).
* ``epochs``: the validation-window RankIC after each epoch, pooled over the fold runs, and that of the epochs
  each run kept (:mod:`atft.validate.epochs`): where ``train.epochs`` is chosen.
* ``objectives``: the pooled versions of the run report's: ``rank_ic_positive``, ``beats_<baseline>`` (paired),
  ``sharpe_net_positive`` and, where the panel has an oracle, ``oracle_fraction``.

A fold run that has not finished is listed in ``missing_runs``; the pooled numbers then cover the finished
folds only, and the objectives FAIL, since a validation with a hole is not a validation.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from atft.config import Config, build_config, read_yaml
from atft.errors import InputFileError
from atft.metrics.finance import daily_rank_ic, evaluate, quantile_returns
from atft.metrics.inference import RatioInterval, block_bootstrap_ratio, mean_inference, paired_difference
from atft.report.markdown import json_ready
from atft.report.read import SOURCES, SplitRows, load_run
from atft.runs.files import atomic_open
from atft.telemetry.events import read_stream
from atft.telemetry.events import records as stream_records
from atft.validate.epochs import epoch_scores
from atft.validate.plan import FoldRun, Plan, read_plan
from atft.validate.runner import finished

BOOTSTRAP_DRAWS = 2000
DECILES = 10


def _fold_rows(
    parent: Path, plan: Plan, split: str = "test"
) -> tuple[dict[str, SplitRows], list[str], dict[int, dict[str, SplitRows]]]:
    """({fold label: ``split`` rows, seeds averaged}, missing run names, {seed: {fold label: that seed's rows}})."""
    by_fold: dict[str, list[tuple[FoldRun, SplitRows]]] = {}
    missing = []
    for run in plan.runs:
        path = plan.run_dir(parent, run)
        if not finished(path):
            missing.append(run.name)
            continue
        rows = load_run(path).splits.get(split)
        if rows is not None:
            by_fold.setdefault(run.label, []).append((run, rows))
    per_seed: dict[int, dict[str, SplitRows]] = {}
    for label, runs in by_fold.items():
        for run, rows in runs:
            per_seed.setdefault(run.seed, {})[label] = rows
    return {label: _average([rows for _, rows in runs]) for label, runs in by_fold.items()}, missing, per_seed


def _average(parts: list[SplitRows]) -> SplitRows:
    """The seeds' rows of one fold with every forecast column averaged (the rows are the same days and stocks)."""
    first = parts[0]
    for other in parts[1:]:
        same = np.array_equal(other.dates, first.dates) and np.array_equal(other.day, first.day)
        if not same or not np.array_equal(other.stock, first.stock):
            raise ValueError("the seeds of one fold scored different rows; they were trained on different data")
    columns = {
        name: values if name.startswith("target_") else np.mean([p.columns[name] for p in parts], axis=0)
        for name, values in first.columns.items()
    }
    return SplitRows(first.dates, first.day, first.stock, columns)


def _pool(parts: list[SplitRows]) -> SplitRows:
    """One set of rows over every fold's test days (disjoint windows), days renumbered over their union."""
    dates = np.concatenate([p.dates[p.day] for p in parts])
    union, day = np.unique(dates, return_inverse=True)
    columns = {name: np.concatenate([p.columns[name] for p in parts]) for name in parts[0].columns}
    return SplitRows(union, day, np.concatenate([p.stock for p in parts]), columns)


def _scores(rows: SplitRows, horizons: list[int], cost_bps: float) -> dict[str, dict[str, dict[str, float]]]:
    """{source: {"<h>d": evaluate(...) plus the RankIC's 95% interval}} on ``rows``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for h in horizons:
        for source in rows.sources(h):
            pred, target = rows.columns[f"{source}_{h}d"], rows.columns[f"target_{h}d"]
            metrics = evaluate(rows.day, pred, target, h, stock=rows.stock, cost_bps=cost_bps)
            series = daily_rank_ic(rows.day, pred, target)
            inference = mean_inference(series.values, horizon=h)
            metrics |= {"rank_ic_ci_low": inference.ci_low, "rank_ic_ci_high": inference.ci_high}
            out.setdefault(source, {})[f"{h}d"] = metrics
    return out


def _paired(rows: SplitRows, horizons: list[int]) -> dict[str, dict[str, dict[str, float]]]:
    """{baseline: {"<h>d": the model's daily RankIC minus the baseline's, with its overlap-correct inference}}."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for h in horizons:
        target = rows.columns[f"target_{h}d"]
        model = daily_rank_ic(rows.day, rows.columns[f"model_{h}d"], target)
        for source in rows.sources(h):
            if source == "model":
                continue
            other = daily_rank_ic(rows.day, rows.columns[f"{source}_{h}d"], target)
            diff = paired_difference(model.days, model.values, other.days, other.values, horizon=h)
            out.setdefault(source, {})[f"{h}d"] = diff.inference._asdict()
    return out


def _rank_ic_rows(groups: dict[str, SplitRows], horizons: list[int], key: str) -> list[dict[str, Any]]:
    """One row per group and horizon: the model's RankIC with its overlap-correct error, each baseline's, and
    the paired t of the model against each (``t_vs_<baseline>``): one year's win or loss, judged as the pool is.
    """
    rows = []
    for name, part in groups.items():
        for h in horizons:
            row: dict[str, Any] = {key: name, "horizon": f"{h}d"}
            target = part.columns[f"target_{h}d"]
            model = daily_rank_ic(part.day, part.columns[f"model_{h}d"], target)
            alone = mean_inference(model.values, horizon=h)
            row |= {"model": alone.mean, "model_se": alone.se, "model_t": alone.t, "days": alone.n}
            for source in part.sources(h):
                if source == "model":
                    continue
                series = daily_rank_ic(part.day, part.columns[f"{source}_{h}d"], target)
                row[source] = float(series.values.mean()) if series.values.size else math.nan
                diff = paired_difference(model.days, model.values, series.days, series.values, horizon=h)
                row[f"t_vs_{source}"] = diff.inference.t
            rows.append(row)
    return rows


def _by_year(rows: SplitRows) -> dict[str, SplitRows]:
    years = rows.dates.astype("datetime64[Y]").astype(str)
    out = {}
    for year in np.unique(years):
        keep = np.isin(rows.day, np.flatnonzero(years == year))
        out[str(year)] = SplitRows(
            rows.dates, rows.day[keep], rows.stock[keep], {k: v[keep] for k, v in rows.columns.items()}
        )
    return out


def _deciles(rows: SplitRows, h: int) -> dict[str, Any]:
    """Mean forward return per model-prediction decile, its errors, the top-minus-bottom spread, monotonicity."""
    q = quantile_returns(rows.day, rows.columns[f"model_{h}d"], rows.columns[f"target_{h}d"], DECILES, horizon=h)
    return {
        "means": q.means.tolist(),
        "standard_errors": q.standard_errors.tolist(),
        "spread": q.spread.mean,
        "spread_se": q.spread.se,
        "spread_t": q.spread.t,
        "monotonicity": q.monotonicity,
    }


def _oracle_fraction(rows: SplitRows, horizons: list[int], seed: int) -> dict[str, dict[str, float]]:
    out = {}
    for h in horizons:
        if f"oracle_{h}d" not in rows.columns:
            continue
        target = rows.columns[f"target_{h}d"]
        model = daily_rank_ic(rows.day, rows.columns[f"model_{h}d"], target)
        oracle = daily_rank_ic(rows.day, rows.columns[f"oracle_{h}d"], target)
        _, a, b = np.intersect1d(model.days, oracle.days, return_indices=True)
        block = max(2 * h, 10)  # at least the overlap of h-day returns, as the errors' lag
        num, den = model.values[a], oracle.values[b]
        if len(num) < 2 * block:  # fewer than two blocks of days: a resample is the same days again, no interval
            ratio = float(num.mean() / den.mean()) if len(num) and den.mean() != 0 else math.nan
            out[f"{h}d"] = RatioInterval(ratio, math.nan, math.nan, len(num), block, 0, 0)._asdict()
            continue
        out[f"{h}d"] = block_bootstrap_ratio(num, den, block, BOOTSTRAP_DRAWS, seed)._asdict()
    return out


def _seed_spread(per_seed: dict[int, dict[str, SplitRows]], horizons: list[int]) -> dict[str, Any]:
    """Per horizon: each seed's pooled model RankIC alone, their mean and spread."""
    out: dict[str, Any] = {}
    for h in horizons:
        values = {}
        for seed, folds in sorted(per_seed.items()):
            rows = _pool(list(folds.values()))
            series = daily_rank_ic(rows.day, rows.columns[f"model_{h}d"], rows.columns[f"target_{h}d"])
            values[str(seed)] = float(series.values.mean()) if series.values.size else math.nan
        finite = [v for v in values.values() if math.isfinite(v)]
        spread = float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan
        out[f"{h}d"] = {"per_seed": values, "mean": float(np.mean(finite)) if finite else math.nan, "std": spread}
    return out


def build_validation_report(parent: str | Path) -> dict[str, Any]:
    """The pooled report of the validation in ``parent`` (see the module docstring), from its run directories."""
    return _build(Path(parent))[0]


def _build(parent: Path) -> tuple[dict[str, Any], SplitRows | None]:
    """The report and the pooled test rows it was computed from (None when no fold run has finished)."""
    plan = read_plan(parent)
    cfg = build_config(read_yaml(parent / "config.yaml"), source=str(parent / "config.yaml"))
    horizons = list(cfg.data.horizons)
    folds, missing, per_seed = _fold_rows(parent, plan)
    finished_runs = [r for r in plan.runs if r.name not in missing]
    records = {r.name: stream_records(read_stream(plan.run_dir(parent, r) / "events.jsonl")[0]) for r in finished_runs}
    report: dict[str, Any] = {
        "validation": str(parent),
        "panel": plan.panel,
        "horizons": horizons,
        "report_horizon": cfg.report.horizon,
        "cost_bps": cfg.train.cost_bps,
        "seeds": plan.seeds,
        "folds": sorted({(r.fold, r.label, r.test_first, r.test_last) for r in plan.runs}),
        "missing_runs": missing,
        "n_test_days": 0,
        "epochs": epoch_scores(records, horizons),
    }
    if not folds:
        report |= {"pooled": {}, "paired": {}, "per_fold": [], "per_year": [], "quantiles": {}, "oracle_fraction": {}}
        report["objectives"] = _objectives(report, cfg)
        return report, None
    rows = _pool([folds[label] for label in sorted(folds)])
    report["n_test_days"] = len(rows.dates)
    report["pooled"] = _scores(rows, horizons, cfg.train.cost_bps)
    report["paired"] = _paired(rows, horizons)
    report["per_fold"] = _rank_ic_rows(dict(sorted(folds.items())), horizons, "fold")
    report["per_year"] = _rank_ic_rows(_by_year(rows), horizons, "year")
    report["quantiles"] = {f"{h}d": _deciles(rows, h) for h in horizons}
    report["oracle_fraction"] = _oracle_fraction(rows, horizons, seed=cfg.seed)
    if len(per_seed) > 1:
        report["seed_spread"] = _seed_spread(per_seed, horizons)
    report["objectives"] = _objectives(report, cfg)
    return report, rows


def _objective(name: str, threshold: float, value: float, passed: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "threshold": threshold, "value": value, "passed": bool(passed), "detail": detail}


def _objectives(report: dict[str, Any], cfg: Config) -> list[dict[str, Any]]:
    """Pooled objectives at ``report.horizon``; a validation with unfinished runs FAILs every one of them."""
    h, hd = cfg.report.horizon, f"{cfg.report.horizon}d"
    hole = f"{len(report['missing_runs'])} fold run(s) unfinished: {', '.join(report['missing_runs'][:5])}"
    model = report.get("pooled", {}).get("model", {}).get(hd)
    names = ["rank_ic_positive", *(f"beats_{b}" for b in cfg.report.beat_baselines), "sharpe_net_positive"]
    if model is None or report["missing_runs"]:
        why = hole if report["missing_runs"] else "no finished fold run"
        return [_objective(n, math.nan, math.nan, False, why) for n in names]
    t_min, paired_min = cfg.report.min_rank_ic_t, cfg.report.min_paired_t
    out = [
        _objective(
            "rank_ic_positive",
            t_min,
            model["rank_ic_t"],
            model["rank_ic"] > 0 and model["rank_ic_t"] >= t_min,
            f"pooled RankIC at {h}d = {model['rank_ic']:.4g} +- {model['rank_ic_se']:.2g} (overlap-correct), "
            f"t = {model['rank_ic_t']:.3g} (must be >= {t_min:g})",
        )
    ]
    for baseline in cfg.report.beat_baselines:
        diff = report["paired"].get(baseline, {}).get(hd)
        if diff is None:
            out.append(_objective(f"beats_{baseline}", paired_min, math.nan, False, f"no {baseline} forecast"))
            continue
        detail = (
            f"daily RankIC at {h}d, model - {baseline} = {diff['mean']:.4g} +- {diff['se']:.2g} over "
            f"{diff['n']} paired days: t = {diff['t']:.3g}, p = {diff['p']:.2g} (must be >= {paired_min:g})"
        )
        out.append(_objective(f"beats_{baseline}", paired_min, diff["t"], diff["t"] >= paired_min, detail))
    net, net_se = model["sharpe_net"], model.get("sharpe_net_se", math.nan)
    detail = f"pooled long-short Sharpe at {h}d net of {cfg.train.cost_bps:g} bps = {net:.3g} +- {net_se:.2g}"
    out.append(_objective("sharpe_net_positive", 0.0, net, net > 0, detail))
    fraction = report["oracle_fraction"].get(hd)
    if cfg.report.min_oracle_fraction is not None and fraction is not None:
        least = cfg.report.min_oracle_fraction
        interval = (
            f"95% block bootstrap {fraction['ci_low']:.3g} .. {fraction['ci_high']:.3g}"
            if fraction["n_boot"]
            else f"no interval: {fraction['n']} days are fewer than two {fraction['block']}-day blocks"
        )
        detail = f"pooled RankIC at {h}d, model / oracle = {fraction['ratio']:.3g} ({interval})"
        out.append(_objective("oracle_fraction", least, fraction["ratio"], fraction["ratio"] >= least, detail))
    return out


def headline(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows ``atft validate`` prints: each source's pooled RankIC per horizon with its error."""
    rows = []
    for source in SOURCES:
        for hd, m in report.get("pooled", {}).get(source, {}).items():
            rows.append(
                {"source": source, "horizon": hd, "RankIC": m["rank_ic"], "SE": m["rank_ic_se"], "t": m["rank_ic_t"]}
            )
    return rows


def compare_validations(parent_a: str | Path, parent_b: str | Path, split: str = "test") -> list[dict[str, Any]]:
    """Per horizon: the pooled model of validation B against A's, paired by day (an ablation is judged so).

    Each row: both pooled RankICs with their overlap-correct errors, and the daily RankIC of B minus A on the
    days both scored, with its error, t and p. The two must have pooled the same days (same panel and folds)
    to pair many of them; the row says how many were paired.

    Why ``split="val"``: a change to the model is chosen on the folds' validation windows, never on their
    test days, so the choice pairs the two validations there. Those scores lean optimistic (the best epoch
    was picked on the same days), for both sides alike.
    """
    rows_a, rows_b = (_pooled_rows(Path(p), split) for p in (parent_a, parent_b))
    out = []
    for h in sorted(set(_horizons(rows_a)) & set(_horizons(rows_b))):
        a, b = (_daily_model_rank_ic(r, h) for r in (rows_a, rows_b))
        alone_a, alone_b = (mean_inference(x[1], horizon=h) for x in (a, b))
        diff = paired_difference(b[0], b[1], a[0], a[1], horizon=h)
        out.append(
            {
                "horizon": f"{h}d",
                "a": alone_a.mean,
                "a_se": alone_a.se,
                "b": alone_b.mean,
                "b_se": alone_b.se,
                **diff.inference._asdict(),
            }
        )
    return out


def _pooled_rows(parent: Path, split: str) -> SplitRows:
    """The ``split`` rows of every finished fold run of the validation in ``parent``, seeds averaged, pooled."""
    folds, _, _ = _fold_rows(parent, read_plan(parent), split)
    if not folds:
        raise InputFileError(f"{parent}: no finished fold run with {split} rows to compare")
    return _pool([folds[label] for label in sorted(folds)])


def _horizons(rows: SplitRows) -> list[int]:
    return [int(m[1]) for name in rows.columns if (m := re.fullmatch(r"model_(\d+)d", name))]


def _daily_model_rank_ic(rows: SplitRows, h: int) -> tuple[np.ndarray, np.ndarray]:
    """(dates, values) of the model's daily RankIC: dates, not day indices, so two validations pair by date."""
    series = daily_rank_ic(rows.day, rows.columns[f"model_{h}d"], rows.columns[f"target_{h}d"])
    return rows.dates[series.days].astype("datetime64[D]").astype(np.int64), series.values


def write_validation_report(parent: str | Path) -> dict[str, Any]:
    """Build the pooled report and write report.json and report.md into ``parent`` (atomically)."""
    from atft.validate.render import render_markdown, write_plots

    parent = Path(parent)
    report, rows = _build(parent)
    report["plots"] = write_plots(parent, report, rows)
    with atomic_open(parent / "report.json") as fh:
        json.dump(json_ready(report), fh, indent=2, allow_nan=False)
        fh.write("\n")
    with atomic_open(parent / "report.md") as fh:
        fh.write(render_markdown(report))
    return report
