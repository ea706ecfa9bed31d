"""Rendering a report: strict JSON, the Markdown tables of report.md (one table format for every report)."""

from __future__ import annotations

import math
from typing import Any

from atft.report.health import health_tables
from atft.report.read import NO_PREDICTIONS, SOURCES

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
    if (torn := report.get("events_torn_line")) is not None:
        lines += [f"**events.jsonl line {torn} was cut off (the run was killed writing it) and is left out.**", ""]
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
