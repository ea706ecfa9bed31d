"""A validation's report.md and its PNGs: the pooled numbers of :mod:`atft.validate.pooled`, for reading.

* ``rank_ic_cumulative.png``: the cumulative daily RankIC over every fold's test days, one panel per horizon,
  the model against each baseline (and the oracle, dashed), fold boundaries marked;
* ``quantile_returns.png``: the mean forward return of each prediction decile, one panel per horizon
  (a ranking that works rises from left to right);
* ``rank_ic_per_fold.png``: the model's RankIC per fold at the report horizon, with two overlap-correct
  standard errors, beside the baselines'.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from atft.metrics.finance import daily_rank_ic
from atft.report.markdown import markdown_table
from atft.report.read import SOURCES, SplitRows
from atft.runs.files import atomic_path

PLOTS = ("rank_ic_cumulative.png", "quantile_returns.png", "rank_ic_per_fold.png")


def render_markdown(report: dict[str, Any]) -> str:
    """report.md: objectives, the pooled table per horizon, paired tests, per fold and year, deciles, seeds."""
    h = report["report_horizon"]
    lines = [f"# Walk-forward validation: {report['validation']}", ""]
    lines += [
        f"{len(report['folds'])} folds, seeds {report['seeds']}, {report['n_test_days']} pooled test days; "
        f"objectives at {h}d; net Sharpe at {report['cost_bps']:g} bps; standard errors are Newey-West "
        "(overlapping h-day returns), so a t-statistic counts independent information, not days.",
        "",
    ]
    if report["missing_runs"]:
        lines += [f"**Unfinished fold runs: {', '.join(report['missing_runs'])}** -- every objective FAILs.", ""]
    objectives = [
        {"result": "PASS" if o["passed"] else "FAIL", **{k: o[k] for k in ("name", "value", "threshold", "detail")}}
        for o in report["objectives"]
    ]
    lines += ["## Objectives", "", *markdown_table(objectives)]
    for hd in (f"{x}d" for x in report["horizons"]):
        rows = [
            {"source": s, **{k: m[k] for k in _POOLED_COLUMNS if k in m}}
            for s in SOURCES
            if (m := report["pooled"].get(s, {}).get(hd)) is not None
        ]
        lines += [f"## Pooled test days, {hd}", "", *markdown_table(rows)]
        paired = [{"model minus": s, **v[hd]} for s, v in report["paired"].items() if hd in v]
        lines += [f"Paired daily RankIC differences at {hd}:", "", *markdown_table(paired)]
    lines += ["## Per fold (RankIC)", "", *markdown_table(report["per_fold"])]
    lines += ["## Per calendar year (RankIC)", "", *markdown_table(report["per_year"])]
    deciles = [
        {
            "horizon": hd,
            **{f"q{i + 1}": v for i, v in enumerate(q["means"])},
            "spread": q["spread"],
            "monotone": q["monotonicity"],
        }
        for hd, q in report["quantiles"].items()
    ]
    lines += ["## Mean forward return by prediction decile (model)", "", *markdown_table(deciles)]
    if report["oracle_fraction"]:
        fractions = [{"horizon": hd, **f} for hd, f in report["oracle_fraction"].items()]
        lines += ["## Fraction of the oracle (pooled RankIC, 95% block bootstrap)", "", *markdown_table(fractions)]
    if "seed_spread" in report:
        seeds = [
            {"horizon": hd, **s["per_seed"], "mean": s["mean"], "std": s["std"]}
            for hd, s in report["seed_spread"].items()
        ]
        lines += [
            "## Seeds (each seed's pooled RankIC; `model` above is their averaged forecast)",
            "",
            *markdown_table(seeds),
        ]
    lines += _epochs_section(report)
    plots = report.get("plots", {"written": [], "skipped": {}})
    lines += ["## Plots", "", *(f"![{p}]({p})\n" for p in plots["written"])]
    lines += [f"- skipped {p}: {why}" for p, why in plots["skipped"].items()]
    return "\n".join([*lines, ""])


def _epochs_section(report: dict[str, Any]) -> list[str]:
    """The validation-window RankIC by epochs trained, and of the epochs kept: the table ``train.epochs`` is
    chosen from (unpicked scores, unlike the kept row)."""
    epochs = report["epochs"]
    if not epochs["by_epochs"]:
        return []
    picked = epochs["picked"]
    kept = {k: v for k, v in picked.items() if k not in ("runs", "rule")}
    rows = [*epochs["by_epochs"], {"epochs": f"kept ({picked['rule']})", "runs": len(picked["runs"]), **kept}]
    return [
        "## Validation windows by epochs trained (RankIC, pooled over fold runs)",
        "",
        "Each row scores every run after that many epochs on its validation window, unpicked: choose "
        "`train.epochs` here and run it with `train.select_epoch=last`. The last row is the epochs each run kept "
        f"({', '.join(f'{n}: {e}' for n, e in picked['runs'].items())}), scored on the days that picked them.",
        "",
        *markdown_table(rows),
    ]


_POOLED_COLUMNS = (
    "rank_ic", "rank_ic_se", "rank_ic_t", "rank_ic_ci_low", "rank_ic_ci_high", "rank_icir",
    "ic", "ic_se", "ic_t", "sharpe", "sharpe_se", "sharpe_net", "sharpe_net_se", "turnover", "n_days",
)  # fmt: skip


def _figure(n_panels: int, width: float = 5.0) -> tuple[Figure, list[Any]]:
    figure = Figure(figsize=(width * n_panels, 4), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, list(figure.subplots(1, n_panels, squeeze=False)[0])


def _cumulative(rows: SplitRows, report: dict[str, Any]) -> Figure:
    figure, axes = _figure(len(report["horizons"]))
    starts = [np.searchsorted(rows.dates, np.datetime64(first)) for _, _, first, _ in report["folds"]]
    for ax, h in zip(axes, report["horizons"], strict=True):
        for source in rows.sources(h):
            series = daily_rank_ic(rows.day, rows.columns[f"{source}_{h}d"], rows.columns[f"target_{h}d"])
            style = {"linewidth": 2.0} if source == "model" else {"linestyle": "--"} if source == "oracle" else {}
            ax.plot(rows.dates[series.days], np.cumsum(series.values), label=source, **style)
        for start in starts[1:]:
            if start < len(rows.dates):
                ax.axvline(rows.dates[start], color="grey", alpha=0.3)
        ax.set_title(f"cumulative daily RankIC, {h}d")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure


def _deciles(report: dict[str, Any]) -> Figure:
    figure, axes = _figure(len(report["quantiles"]))
    for ax, (hd, q) in zip(axes, report["quantiles"].items(), strict=True):
        means = np.asarray(q["means"], dtype=float)
        ax.bar(np.arange(1, len(means) + 1), means * 1e4)
        ax.set_title(f"mean {hd} forward return by decile (bps)")
        ax.set_xlabel("prediction decile (1 = lowest)")
        ax.grid(alpha=0.3, axis="y")
    return figure


def _per_fold(report: dict[str, Any]) -> Figure:
    hd = f"{report['report_horizon']}d"
    rows = [r for r in report["per_fold"] if r["horizon"] == hd]
    figure, (ax,) = _figure(1, width=max(5.0, 0.9 * len(rows)))
    x = np.arange(len(rows))
    sources = [s for s in SOURCES if any(s in r for r in rows)]
    width = 0.8 / max(1, len(sources))
    for k, source in enumerate(sources):
        values = [r.get(source, math.nan) for r in rows]
        errors = [2 * r["model_se"] for r in rows] if source == "model" else None
        ax.bar(x + k * width, values, width, yerr=errors, label=source)
    ax.set_xticks(x + 0.4 - width / 2, [r["fold"] for r in rows])
    ax.set_title(f"RankIC per fold at {hd} (model: +- 2 overlap-correct SE)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return figure


def write_plots(parent: Path, report: dict[str, Any], rows: SplitRows | None) -> dict[str, Any]:
    """Draw the plots into ``parent``; ``{"written": [...], "skipped": {name: why}}``; stale ones removed."""
    if rows is None:
        for name in PLOTS:
            (parent / name).unlink(missing_ok=True)
        return {"written": [], "skipped": dict.fromkeys(PLOTS, "no finished fold run")}
    figures = {
        "rank_ic_cumulative.png": _cumulative(rows, report),
        "quantile_returns.png": _deciles(report),
        "rank_ic_per_fold.png": _per_fold(report),
    }
    for name, figure in figures.items():
        with atomic_path(parent / name) as tmp:
            figure.savefig(tmp, format="png", dpi=100)
    return {"written": list(figures), "skipped": {}}
