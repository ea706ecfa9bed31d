"""The validation report of one run: objectives PASS/FAIL, metrics per split, source and horizon, plots.

Why: a run is worth keeping only if its forecasts rank stocks out of sample with a t-statistic, beat trivial
signals on the same days, and got there without degenerating (a NaN loss, a component that never received a
gradient, predictions collapsed to one value, no learning signal, a dead input). The report answers that from the
run directory alone (docs/run-format.md): ``config.yaml``, ``events.jsonl`` and ``predictions.parquet`` --
nothing from another run, so a copied run directory gives the same report. A run that stopped early (a drill that
aborts, a non-finite loss) has no ``predictions.parquet``: its report has empty metrics sections, every
prediction-based objective FAILS with :data:`NO_PREDICTIONS`, and the health objectives are judged from the records.

What is measured where:

* ``metrics[split][source]["<h>d"]``: :func:`atft.metrics.finance.evaluate` (the one definition of each metric)
  on the ``predictions.parquet`` rows of that split: pred = ``<source>_<h>d``, target = ``target_<h>d``,
  day = the row's date as an index into the split's trading days, stock = ``code``, cost_bps =
  ``train.cost_bps``. Sources: ``model`` (the median quantile) and whichever of momentum, reversal, ridge and
  oracle the file holds. A column holding ±Inf cannot be evaluated; it is listed in ``not_evaluated``.
* ``fraction_of_oracle[split]["<h>d"]``: model RankIC / oracle RankIC, when the oracle is present (synthetic).
* ``epochs``: one row per epoch, the ``val`` record (the IC, RankIC, Sharpe and dispersion ratio the training
  loop measured on val) beside the ``epoch`` record (train loss, wall time); ``train_curve``: the ``train``
  records; ``cost`` and ``selection``: those records as logged.
* ``gradient_flow``, ``resets_per_epoch``, ``health_events``, ``training_signal``: what the training monitors
  measured (:mod:`atft.report.health`).
* ``evaluated``: whether ``predictions.parquet`` exists (False: the run stopped before evaluation).
* ``objectives``: each ``{name, threshold, value, passed, detail}``, thresholds from ``config.report``:

  - ``no_nan`` (threshold 0): count of non-finite numbers in the ``train`` records, ``non_finite`` health
    records, and non-finite cells of the ``model_*`` prediction columns;
  - the health objectives of :mod:`atft.report.health`: ``all_components_received_gradient``,
    ``no_vanishing_gradient``, ``no_exploding_gradient``, ``no_collapse``, ``learning_signal``, ``no_dead_inputs``;
  - ``rank_ic_positive``: test model RankIC at ``report.horizon`` > 0 and its overlap-correct t-stat (Newey-West,
    :mod:`atft.metrics.inference`) >= ``report.min_rank_ic_t``;
  - ``beats_<baseline>`` for each of ``report.beat_baselines``: the test days' daily RankIC of the model minus
    the baseline's, paired by day, has an overlap-correct t of at least ``report.min_paired_t``;
  - ``dispersion_ratio``: test model dispersion ratio at ``report.horizon`` >= ``report.min_dispersion_ratio``;
  - ``oracle_fraction``, when ``report.min_oracle_fraction`` is set and the panel has an oracle (synthetic
    panels; a real panel has no achievable bound to compare with, so there it is not judged): test model
    RankIC / the oracle's at ``report.horizon`` >= it.

  An objective whose input is missing FAILS, its detail saying what is missing: nothing passes by default.

:func:`write_report` writes ``report.json`` (strict JSON: NaN as null), ``report.md`` and the PNGs of
:mod:`atft.report.plots`, each atomically. :func:`compare` puts every scalar of two runs' reports side by side.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from atft.metrics.finance import evaluate
from atft.report.health import health_objectives, health_sections, of_kind
from atft.report.judge import Metrics, divide, no_nan, test_objectives
from atft.report.markdown import json_ready, render_markdown
from atft.report.plots import write_plots
from atft.report.read import Run, SplitRows, load_run
from atft.runs.files import atomic_open


def _split_metrics(
    rows: SplitRows, horizons: list[int], cost_bps: float
) -> tuple[dict[str, dict[str, Metrics]], dict[str, str]]:
    """({source: {"<h>d": evaluate(...)}}, {"<source>_<h>d": why it was not evaluated})."""
    metrics: dict[str, dict[str, Metrics]] = {}
    skipped = {}
    for h in horizons:
        for source in rows.sources(h):
            if (why := rows.problem(source, h)) is not None:
                skipped[f"{source}_{h}d"] = why
                continue
            pred, target = rows.columns[f"{source}_{h}d"], rows.columns[f"target_{h}d"]
            metrics.setdefault(source, {})[f"{h}d"] = evaluate(
                rows.day, pred, target, h, stock=rows.stock, cost_bps=cost_bps
            )
    return metrics, skipped


def _fraction_of_oracle(metrics: dict[str, dict[str, dict[str, Metrics]]]) -> dict[str, dict[str, float]]:
    out = {}
    for split, by_source in metrics.items():
        model, oracle = by_source.get("model", {}), by_source.get("oracle", {})
        ratios = {hd: divide(model[hd]["rank_ic"], oracle[hd]["rank_ic"]) for hd in model if hd in oracle}
        if ratios:
            out[split] = ratios
    return out


def _last(records: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    found = of_kind(records, kind)
    return found[-1] if found else None


def _fields(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A record without its ``kind`` and wall-clock ``time``."""
    return None if record is None else {k: v for k, v in record.items() if k not in ("kind", "time")}


def _epoch_table(records: list[dict[str, Any]], horizons: list[int]) -> list[dict[str, Any]]:
    """One row per epoch: the val record's metrics beside the epoch record's train loss; missing = NaN."""
    val = {r.get("epoch"): r for r in of_kind(records, "val")}
    ep = {r.get("epoch"): r for r in of_kind(records, "epoch")}
    rows = []
    for epoch in sorted(e for e in val.keys() | ep.keys() if e is not None):
        v, e = val.get(epoch, {}), ep.get(epoch, {})
        row = {"epoch": epoch, "step": v.get("step", e.get("step"))}
        row |= {"train_loss": e.get("train_loss", math.nan), "val_loss": v.get("loss", math.nan)}
        row["wall_s"] = e.get("wall_s", math.nan)
        for h in horizons:
            row |= {f"{m}_{h}d": v.get(f"{m}_{h}d", math.nan) for m in ("ic", "rank_ic", "sharpe", "dispersion_ratio")}
        rows.append(row)
    return rows


def _build(run: Run) -> dict[str, Any]:
    cfg = run.cfg
    metrics, not_evaluated = {}, {}
    for split, rows in run.splits.items():
        metrics[split], skipped = _split_metrics(rows, cfg.data.horizons, cfg.train.cost_bps)
        if skipped:
            not_evaluated[split] = skipped
    report: dict[str, Any] = {
        "run": str(run.path),
        "horizons": list(cfg.data.horizons),
        "report_horizon": cfg.report.horizon,
        "cost_bps": cfg.train.cost_bps,
        "evaluated": run.evaluated,
        "events_torn_line": run.torn_line,
        "objectives": [],
        "metrics": metrics,
        "not_evaluated": not_evaluated,
        "fraction_of_oracle": _fraction_of_oracle(metrics),
        "epochs": _epoch_table(run.records, cfg.data.horizons),
        "train_curve": [_fields(r) for r in of_kind(run.records, "train")],
        "cost": _fields(_last(run.records, "cost")),
        "selection": _fields(_last(run.records, "selection")),
        **health_sections(run.records, cfg.data.horizons),
    }
    report["objectives"] = [no_nan(run), *health_objectives(run.records, cfg), *test_objectives(report, run)]
    return report


def build_report(run_dir: str | Path) -> dict[str, Any]:
    """The report of one run (see the module docstring), computed from that run directory only."""
    return _build(load_run(run_dir))


def write_report(run_dir: str | Path) -> dict[str, Any]:
    """Build the report and write report.json, report.md and the PNGs into the run directory; returns it."""
    run = load_run(run_dir)
    report = _build(run)
    report["plots"] = write_plots(run, report)
    with atomic_open(run.path / "report.json") as fh:
        json.dump(json_ready(report), fh, indent=2, allow_nan=False)
        fh.write("\n")
    with atomic_open(run.path / "report.md") as fh:
        fh.write(render_markdown(report))
    return report
