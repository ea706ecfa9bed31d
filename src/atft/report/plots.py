"""The PNGs of the validation report, drawn on an Agg canvas (no pyplot state) and written atomically.

* ``rank_ic_cumulative.png``: cumulative daily RankIC (:func:`~atft.metrics.finance.daily_rank_ic`) on test,
  one panel per horizon, the model against every baseline present (and the oracle, dashed);
* ``long_short_equity.png``: cumulative sum of the quintile long-short returns
  (:func:`~atft.metrics.finance.long_short_returns`) on test: every day at h=1, and every h-th tradable day at
  ``report.horizon`` -- the non-overlapping rebalances of ``long_short_sharpe``, so the mean step is ``ls_mean``;
* ``dispersion_ratio.png``: the val records' dispersion ratio per epoch and horizon, with
  ``report.min_dispersion_ratio``;
* ``loss.png``: train loss per step (train records) and val loss at each epoch end (val records);
* ``gradient_norms.png``: the gradient L2 norm of each component (``grad_norm/<c>`` of the grad records) over the
  optimizer steps, on a log axis; a value <= 0 or non-finite has no place on it and is left out.

A plot whose input is missing is not drawn but listed as skipped with the reason, and a PNG of that name left by
an earlier report is removed, so the directory never shows a plot this report did not make. NaN values leave
gaps in a line (matplotlib skips them); they never stop a plot.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from atft.metrics.finance import daily_rank_ic, long_short_returns
from atft.runs.files import atomic_path

if TYPE_CHECKING:
    from atft.report.read import Run, SplitRows


def write_plots(run: Run, report: dict[str, Any]) -> dict[str, Any]:
    """Draw every plot into the run directory; returns ``{"written": [file], "skipped": {file: reason}}``."""
    test, no_test = run.splits.get("test"), run.missing("test") or ""  # a reason exactly when test is None
    horizons, h = report["horizons"], report["report_horizon"]
    figures: dict[str, Figure | str] = {
        "rank_ic_cumulative.png": no_test if test is None else _rank_ic_figure(test, horizons),
        "long_short_equity.png": no_test if test is None else _long_short_figure(test, horizons, h),
        "dispersion_ratio.png": _dispersion_figure(run.records, horizons, run.cfg.report.min_dispersion_ratio),
        "loss.png": _loss_figure(run.records),
        "gradient_norms.png": _gradient_figure(run.records),
    }
    written, skipped = [], {}
    for name, figure in figures.items():
        path = run.path / name
        if isinstance(figure, str):
            skipped[name] = figure
            path.unlink(missing_ok=True)
            continue
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=100)
        written.append(name)
    return {"written": written, "skipped": skipped}


def _figure(n_panels: int) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(5 * n_panels, 4), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, list(figure.subplots(1, n_panels, squeeze=False)[0])


def _finish(ax: Axes, title: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _style(source: str) -> dict[str, Any]:
    return {"linewidth": 2.0} if source == "model" else {"linestyle": "--"} if source == "oracle" else {}


def _rank_ic_figure(test: SplitRows, horizons: list[int]) -> Figure:
    figure, axes = _figure(len(horizons))
    for ax, h in zip(axes, horizons, strict=True):
        for source in test.sources(h):
            if test.problem(source, h) is None:
                days, ic, _ = daily_rank_ic(test.day, test.columns[f"{source}_{h}d"], test.columns[f"target_{h}d"])
                ax.plot(test.dates[days], np.cumsum(ic), label=source, **_style(source))
        _finish(ax, f"test, {h}d", "cumulative daily RankIC")
    figure.autofmt_xdate()
    return figure


def _long_short_figure(test: SplitRows, horizons: list[int], report_horizon: int) -> Figure:
    panels = sorted({report_horizon} | ({1} & set(horizons)))
    figure, axes = _figure(len(panels))
    for ax, h in zip(axes, panels, strict=True):
        for source in test.sources(h):
            if test.problem(source, h) is None:
                ls = long_short_returns(test.day, test.columns[f"{source}_{h}d"], test.columns[f"target_{h}d"])
                # every h-th tradable day: the non-overlapping rebalances that long_short_sharpe scores
                ax.plot(test.dates[ls.days[::h]], np.cumsum(ls.returns[::h]), label=source, **_style(source))
        title = "test, 1d, daily" if h == 1 else f"test, {h}d, every {h}th day (non-overlapping)"
        _finish(ax, title, "cumulative long-short return (gross)")
    figure.autofmt_xdate()
    return figure


def _dispersion_figure(records: list[dict[str, Any]], horizons: list[int], floor: float) -> Figure | str:
    val = [r for r in records if r["kind"] == "val"]
    if not val:
        return "events.jsonl has no val records"
    figure, (ax,) = _figure(1)
    epochs = [r.get("epoch", math.nan) for r in val]
    for h in horizons:
        ax.plot(epochs, [r.get(f"dispersion_ratio_{h}d", math.nan) for r in val], marker="o", label=f"{h}d")
    ax.axhline(floor, color="red", linestyle=":", label="report.min_dispersion_ratio")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _finish(ax, "val prediction dispersion", "std(pred) / std(target)")
    return figure


def _loss_figure(records: list[dict[str, Any]]) -> Figure | str:
    train = [r for r in records if r["kind"] == "train"]
    val = [r for r in records if r["kind"] == "val"]
    if not train and not val:
        return "events.jsonl has no train or val records"
    figure, (ax,) = _figure(1)
    styles: list[dict[str, Any]] = [{}, {"marker": "o"}]
    for name, rows, style in zip(("train", "val"), (train, val), styles, strict=True):
        if rows:
            steps = [r.get("step", math.nan) for r in rows]
            ax.plot(steps, [r.get("loss", math.nan) for r in rows], label=name, **style)
    ax.set_xlabel("optimizer step")
    _finish(ax, "loss", "loss")
    return figure


def _gradient_figure(records: list[dict[str, Any]]) -> Figure | str:
    grads = [r for r in records if r["kind"] == "grad"]
    if not grads:
        return "events.jsonl has no grad records"
    figure, (ax,) = _figure(1)
    figure.set_size_inches(8, 4.5)  # room for a legend of a dozen components beside the axes
    for key in dict.fromkeys(k for r in grads for k in r if k.startswith("grad_norm/")):
        points = [(r["step"], float(r[key])) for r in grads if _positive(r.get(key))]
        if points:
            steps, norms = zip(*points, strict=True)
            # the colour cycle has 10 colours: the next ten components get another line style
            style = ("-", "--", ":", "-.")[len(ax.lines) // 10 % 4]
            ax.plot(steps, norms, marker=".", linestyle=style, label=key.removeprefix("grad_norm/"))
    if not ax.lines:
        return "no grad record has a positive finite grad_norm/<component>"
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    _finish(ax, "gradient flow (before clipping)", "gradient L2 norm")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return figure


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
