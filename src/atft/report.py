"""The validation report of one run: objectives PASS/FAIL, metrics per split, source and horizon, plots.

Why: a run is worth keeping only if its forecasts rank stocks out of sample with a t-statistic, beat trivial
signals on the same days, and got there without degenerating (a NaN loss, a component that never received a
gradient, predictions collapsed to one value, no learning signal, a dead input). The report answers that from the
run directory alone (docs/run-format.md): ``config.yaml``, ``metrics.jsonl`` and ``predictions.parquet`` --
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
  measured (:mod:`atft.report_health`).
* ``evaluated``: whether ``predictions.parquet`` exists (False: the run stopped before evaluation).
* ``objectives``: each ``{name, threshold, value, passed, detail}``, thresholds from ``config.report``:

  - ``no_nan`` (threshold 0): count of non-finite numbers in the ``train`` records, ``non_finite`` health
    records, and non-finite cells of the ``model_*`` prediction columns;
  - the health objectives of :mod:`atft.report_health`: ``all_components_received_gradient``,
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
:mod:`atft.report_plots`, each atomically. :func:`compare` puts every scalar of two runs' reports side by side.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from atft.config import Config, build_config, read_yaml
from atft.errors import AtftError, InputFileError
from atft.io import atomic_open, read_table
from atft.metrics.finance import daily_rank_ic, evaluate
from atft.metrics.inference import Inference, paired_difference
from atft.report_health import health_objectives, health_sections, health_tables, objective, of_kind
from atft.report_plots import write_plots

SPLITS = ("val", "test")
SOURCES = ("model", "momentum", "reversal", "ridge", "lightgbm", "oracle")
RUN_FILES = ("config.yaml", "metrics.jsonl", "predictions.parquet")
REQUIRED_FILES = RUN_FILES[:2]
"""A run that stopped before evaluation has no predictions.parquet; without these two there is no run."""
NO_PREDICTIONS = "no predictions.parquet: the run stopped before evaluation"
TABLE_COLUMNS = {
    "IC": "ic",
    "RankIC": "rank_ic",
    "RankIC SE": "rank_ic_se",
    "RankIC t": "rank_ic_t",
    "ICIR": "icir",
    "Sharpe": "sharpe",
    "Sharpe net": "sharpe_net",
    "turnover": "turnover",
    "hit rate": "hit_rate",
    "dispersion": "dispersion_ratio",
    "days": "n_days",
}
"""Column title -> key of :func:`~atft.metrics.finance.evaluate`, for the metric tables (report.md, CLI)."""

Metrics = dict[str, float]


class ObjectivesFailed(AtftError):
    """At least one objective of the report FAILed (``atft report --check``)."""

    exit_code = 1


@dataclass(frozen=True)
class SplitRows:
    """The prediction rows of one split as (R,) arrays; ``columns`` hold target_* and <source>_* as float64."""

    dates: NDArray[np.datetime64]  # (D,) the split's trading days, ascending
    day: NDArray[np.intp]  # (R,) index of the row's date into ``dates``
    stock: NDArray[Any]  # (R,) code
    columns: dict[str, NDArray[np.float64]]  # NaN (or null in the file) = missing

    def sources(self, h: int) -> list[str]:
        """The sources with a forecast column at horizon ``h``."""
        return [s for s in SOURCES if f"{s}_{h}d" in self.columns]

    def problem(self, source: str, h: int) -> str | None:
        """Why ``source`` cannot be evaluated at ``h`` (finance rejects ±Inf), or None."""
        for name in (f"target_{h}d", f"{source}_{h}d"):
            n_inf = int(np.isinf(self.columns[name]).sum())
            if n_inf:
                return f"{name} holds ±Inf on {n_inf} rows"
        return None


@dataclass(frozen=True)
class Run:
    """The inputs of a report, read from one run directory."""

    path: Path
    cfg: Config
    records: list[dict[str, Any]]
    splits: dict[str, SplitRows]
    evaluated: bool  # predictions.parquet exists
    torn_line: int | None = None  # metrics.jsonl's unterminated last line, dropped (the writer was killed)

    def missing(self, split: str) -> str | None:
        """Why ``split`` has no prediction rows, or None."""
        if not self.evaluated:
            return NO_PREDICTIONS
        return None if split in self.splits else f"predictions.parquet has no {split} rows"

    def has_oracle(self, h: int) -> bool:
        """Whether the predictions carry the oracle at ``h`` (synthetic panels)."""
        return any(f"oracle_{h}d" in rows.columns for rows in self.splits.values())


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory; a missing or malformed file is an :class:`InputFileError` naming it.

    ``predictions.parquet`` may be missing (the run stopped before evaluation); config.yaml and metrics.jsonl not.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise InputFileError(f"{path}: no such run directory (expected {', '.join(RUN_FILES)} in it)")
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise InputFileError(f"{path / name}: no such file; a run directory holds {', '.join(RUN_FILES)}")
    cfg = build_config(read_yaml(path / "config.yaml"), source=str(path / "config.yaml"))
    records, torn = _read_records(path / "metrics.jsonl")
    evaluated = (path / "predictions.parquet").is_file()
    splits = _read_predictions(path / "predictions.parquet", cfg.data.horizons) if evaluated else {}
    return Run(path, cfg, records, splits, evaluated, torn)


def _read_records(path: Path) -> tuple[list[dict[str, Any]], int | None]:
    """The records of metrics.jsonl, and the number of an unterminated last line that was dropped (or None).

    The file is appended to line by line while the run goes on, so a kill can leave half a line at its end:
    that one line is dropped and reported (the report says so); a bad line anywhere else is an error.
    """
    records: list[dict[str, Any]] = []
    with open(path, "rb") as fh:  # bytes: a line that is not UTF-8 is named like any other bad line
        lines = fh.readlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            if number == len(lines) and not line.endswith(b"\n"):
                return records, number
            why = {UnicodeDecodeError: "not UTF-8 text", RecursionError: "nested too deeply"}.get(
                type(exc), getattr(exc, "msg", str(exc))
            )
            raise InputFileError(f"{path}:{number}: not valid JSON ({why})") from exc
        if not isinstance(record, dict) or "kind" not in record:
            raise InputFileError(f"{path}:{number}: expected a JSON object with a 'kind' key")
        records.append(record)
    return records, None


def _read_predictions(path: Path, horizons: list[int]) -> dict[str, SplitRows]:
    table = read_table(path)
    required = ["split", "date", "code", *(f"{c}_{h}d" for h in horizons for c in ("target", "model"))]
    missing = [c for c in required if c not in table.schema.names]
    if missing:
        raise InputFileError(f"{path}: missing column(s) {', '.join(missing)} (see docs/run-format.md)")
    prefixes = tuple(f"{s}_" for s in ("target", *SOURCES))
    values = [n for n in table.schema.names if n.startswith(prefixes)]
    out = {}
    for split in SPLITS:
        rows = table.filter(pc.equal(table.column("split"), split))
        if rows.num_rows:
            out[split] = _split_rows(rows, values)
    return out


def _split_rows(table: pa.Table, value_columns: list[str]) -> SplitRows:
    dates, day = np.unique(table.column("date").to_numpy(), return_inverse=True)
    return SplitRows(
        dates=dates,
        day=day,
        stock=table.column("code").to_numpy(zero_copy_only=False),
        columns={n: table.column(n).to_numpy(zero_copy_only=False).astype(np.float64) for n in value_columns},
    )


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
        ratios = {hd: _ratio(model[hd]["rank_ic"], oracle[hd]["rank_ic"]) for hd in model if hd in oracle}
        if ratios:
            out[split] = ratios
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b != 0 else math.nan


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


def _non_finite(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _no_nan(run: Run) -> dict[str, Any]:
    """Non-finite numbers in the train records, non_finite health records and model predictions; each must be 0."""
    train = of_kind(run.records, "train")
    bad = [(f"metrics.jsonl train step {r.get('step')} {k}", 1) for r in train for k, v in r.items() if _non_finite(v)]
    bad += [
        (f"metrics.jsonl health step {r.get('step')} non_finite: {r.get('message', '')}", 1)
        for r in of_kind(run.records, "health")
        if r.get("name") == "non_finite"
    ]
    for split, rows in run.splits.items():
        for name, column in rows.columns.items():
            if name.startswith("model_") and (n := int((~np.isfinite(column)).sum())):
                bad.append((f"predictions.parquet {split} {name} ({n} rows)", n))
    missing = [] if train else ["metrics.jsonl has no train records"]
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


def _test_objectives(report: dict[str, Any], run: Run) -> list[dict[str, Any]]:
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
            fraction = _ratio(rank_ic, oracle["rank_ic"])
            detail = f"test RankIC at {h}d: model {rank_ic:.4g} / oracle {oracle['rank_ic']:.4g} = {fraction:.3g}"
            out.append(objective("oracle_fraction", least, fraction, fraction >= least, detail))
    return out


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
        "metrics_torn_line": run.torn_line,
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
    report["objectives"] = [_no_nan(run), *health_objectives(run.records, cfg), *_test_objectives(report, run)]
    return report


def build_report(run_dir: str | Path) -> dict[str, Any]:
    """The report of one run (see the module docstring), computed from that run directory only."""
    return _build(load_run(run_dir))


def failed(report: dict[str, Any]) -> list[str]:
    """Names of the objectives that FAILed."""
    return [o["name"] for o in report["objectives"] if not o["passed"]]


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


def json_ready(node: Any) -> Any:
    """``node`` with every NaN or ±Inf float replaced by None, so it serialises as strict JSON (null)."""
    if isinstance(node, dict):
        return {k: json_ready(v) for k, v in node.items()}
    if isinstance(node, list):
        return [json_ready(v) for v in node]
    return None if isinstance(node, float) and not math.isfinite(node) else node


def metric_rows(report: dict[str, Any], split: str, h: int) -> list[dict[str, Any]]:
    """One row per source of ``split`` at ``h``, columns :data:`TABLE_COLUMNS`."""
    by_source = report["metrics"].get(split, {})
    return [
        {"source": s, **{title: by_source[s][f"{h}d"][key] for title, key in TABLE_COLUMNS.items()}}
        for s in SOURCES
        if f"{h}d" in by_source.get(s, {})
    ]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    """``rows`` as a Markdown table and a blank line: a column per key any row has (first seen first),
    floats to 4 significant digits, NaN and missing cells as ``n/a``; ``(none)`` for no rows."""
    if not rows:
        return ["(none)", ""]
    header = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return [*lines, *("| " + " | ".join(_cell(r.get(k)) for k in header) + " |" for r in rows), ""]


def render_markdown(report: dict[str, Any]) -> str:
    """report.md: objectives first, then metrics per split and horizon, oracle fraction, epochs, health, cost, plots."""
    h = report["report_horizon"]
    lines = [f"# Validation report: {report['run']}", ""]
    lines += [f"Objectives are judged on the test split at {h}d; net Sharpe at {report['cost_bps']:g} bps.", ""]
    if not report["evaluated"]:
        lines += [f"**{NO_PREDICTIONS.capitalize()}**: no metrics; every prediction-based objective FAILs.", ""]
    if (torn := report.get("metrics_torn_line")) is not None:
        lines += [f"**metrics.jsonl line {torn} was cut off (the run was killed writing it) and is left out.**", ""]
    objectives = [
        {"result": "PASS" if o["passed"] else "FAIL", **{k: o[k] for k in ("name", "value", "threshold", "detail")}}
        for o in report["objectives"]
    ]
    lines += ["## Objectives", "", *markdown_table(objectives)]
    for split in report["metrics"]:
        for horizon in report["horizons"]:
            lines += [f"## {split}, {horizon}d", "", *markdown_table(metric_rows(report, split, horizon))]
    for split, skipped in report["not_evaluated"].items():
        lines += [f"Not evaluated on {split}: " + "; ".join(f"{c}: {why}" for c, why in skipped.items()), ""]
    fractions = [{"split": s, **ratios} for s, ratios in report["fraction_of_oracle"].items()]
    lines += ["## Fraction of oracle (model RankIC / oracle RankIC)", "", *markdown_table(fractions)]
    lines += ["## Per epoch (val records)", "", *markdown_table(report["epochs"])]
    for title, rows in health_tables(report):
        lines += [f"## {title}", "", *markdown_table(rows)]
    for name in ("cost", "selection"):
        record = report[name] or {}
        lines += [f"## {name.capitalize()}", "", *markdown_table([{"key": k, "value": v} for k, v in record.items()])]
    plots = report.get("plots", {"written": [], "skipped": {}})
    lines += ["## Plots", "", *(f"![{p}]({p})\n" for p in plots["written"])]
    lines += [f"- skipped {p}: {why}" for p, why in plots["skipped"].items()]
    return "\n".join([*lines, ""])


def _scalars(report: dict[str, Any]) -> dict[str, float]:
    """Every numeric leaf of the report's metrics, oracle fractions, cost, selection, gradient flow, training
    signal, objective values and health event counts."""
    out: dict[str, float] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}", value)
        elif isinstance(node, int | float) and not isinstance(node, bool):
            out[prefix] = float(node)

    for key in ("metrics", "fraction_of_oracle", "cost", "selection", "gradient_flow", "training_signal"):
        walk(key, report[key] or {})
    walk("objectives", {o["name"]: o["value"] for o in report["objectives"]})
    walk("health_events", report["health_events"]["counts"])
    return out


def compare(run_a: str | Path, run_b: str | Path) -> list[dict[str, Any]]:
    """Every scalar of the two runs' reports: ``{"metric", "a", "b", "diff"}`` with diff = b - a (NaN if absent)."""
    a, b = _scalars(build_report(run_a)), _scalars(build_report(run_b))
    keys = dict.fromkeys([*a, *b])
    return [
        {"metric": k, "a": a.get(k, math.nan), "b": b.get(k, math.nan), "diff": b.get(k, math.nan) - a.get(k, math.nan)}
        for k in keys
    ]
