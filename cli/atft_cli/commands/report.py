"""``atft report``: (re)build a run's validation report, check its objectives, or compare two runs."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from atft_cli.options import OutputOpt
from atft_cli.output import Format, emit, hint

RunArg = Annotated[
    Path, typer.Argument(metavar="RUN_DIR", help="run directory (`atft train`) or validation (`atft validate`)")
]
RunBArg = Annotated[
    Path | None,
    typer.Argument(
        metavar="RUN_B",
        help="a second run: every metric side by side, b - a; two validations: their pooled models paired by day",
    ),
]
CheckOpt = Annotated[bool, typer.Option("--check", help="exit 1 when any objective FAILs")]


class PairedSplit(StrEnum):
    test = "test"
    val = "val"


SplitOpt = Annotated[
    PairedSplit | None,
    typer.Option(
        "--split",
        help="two validations: pair their folds' test days (default) or validation windows (val: where a "
        "change is chosen, so the test days stay unseen)",
    ),
]


def report(
    run: RunArg,
    run_b: RunBArg = None,
    check: CheckOpt = False,
    split: SplitOpt = None,
    output: OutputOpt = Format.table,
) -> None:
    """Write report.json, report.md and the plots into RUN_DIR; print the objectives and the test metrics.

    Examples:

      atft report runs/demo                                  # one run: objectives and test metrics
      atft report runs/wf --check                            # a validation: pooled; exit 1 if an objective FAILs
      atft report runs/wf runs/wf-nograph                    # two validations, paired by test day
      atft report runs/sp500 runs/exp/rank2 --split val      # choose a change on the validation windows
    """
    if run_b is not None:
        if check:
            raise typer.BadParameter("--check judges one run; drop RUN_B or --check")
        _compare(run, run_b, split, output)
        return
    if split is not None:
        raise typer.BadParameter("--split pairs two validations; give RUN_B too", param_hint="--split")
    from atft.report.build import write_report
    from atft.report.judge import ObjectivesFailed, failed
    from atft.report.markdown import json_ready, metric_rows
    from atft.validate.plan import MARKER

    if (run / MARKER).is_file():
        _validation(run, check, output)
        return

    rep = write_report(run)
    h = rep["report_horizon"]
    objectives = [
        {"result": "PASS" if o["passed"] else "FAIL", **{k: o[k] for k in ("name", "value", "threshold", "detail")}}
        for o in rep["objectives"]
    ]
    test = metric_rows(rep, "test", h)
    if output is Format.table:
        emit(objectives, output, title=f"{run}: objectives (test, {h}d)")
        if test:
            emit(test, output, title=f"{run}: test metrics at {h}d")
    else:
        emit(json_ready({"run": str(run), "objectives": rep["objectives"], f"test_{h}d": test}), output)
    hint(f"wrote {run / 'report.md'}, report.json and {len(rep['plots']['written'])} plots")
    if (torn := rep["events_torn_line"]) is not None:
        hint(f"{run / 'events.jsonl'}: line {torn} was cut off (the run was killed writing it); left out")
    if not rep["evaluated"]:
        hint(f"{run}: no predictions.parquet, the run stopped before evaluation; no test metrics")
    if counts := rep["health_events"]["counts"]:
        hint("health events: " + ", ".join(f"{name} x{n}" for name, n in counts.items()) + " (see report.md)")
    names = failed(rep)
    if names and check:
        raise ObjectivesFailed(f"{run}: {len(names)} objective(s) FAIL: {', '.join(names)} (see {run / 'report.md'})")
    if names:
        hint(f"{len(names)} objective(s) FAIL: {', '.join(names)}; --check makes that exit 1")


def _validation(parent: Path, check: bool, output: Format) -> None:
    """The pooled report of a validation, rebuilt from its fold run directories (also what a report Job runs)."""
    from atft.report.judge import ObjectivesFailed, failed
    from atft.report.markdown import json_ready
    from atft.validate.pooled import headline, write_validation_report

    rep = write_validation_report(parent)
    objectives = [
        {"result": "PASS" if o["passed"] else "FAIL", **{k: o[k] for k in ("name", "value", "threshold", "detail")}}
        for o in rep["objectives"]
    ]
    if output is Format.table:
        emit(objectives, output, title=f"{parent}: pooled objectives ({rep['report_horizon']}d)")
        emit(headline(rep), output, title=f"{parent}: pooled out-of-sample ({rep['n_test_days']} test days)")
    else:
        emit(json_ready({"validation": str(parent), "objectives": rep["objectives"], "pooled": rep["pooled"]}), output)
    hint(f"wrote {parent / 'report.md'}, report.json and {len(rep['plots']['written'])} plots")
    if rep["missing_runs"]:
        hint(f"{len(rep['missing_runs'])} fold run(s) unfinished: atft validate --resume auto continues them")
    names = failed(rep)
    if names and check:
        raise ObjectivesFailed(f"{parent}: {len(names)} objective(s) FAIL: {', '.join(names)}")


def _compare(run_a: Path, run_b: Path, split: PairedSplit | None, output: Format) -> None:
    from atft.report.compare import compare
    from atft.report.markdown import json_ready
    from atft.validate.plan import MARKER

    if (run_a / MARKER).is_file() and (run_b / MARKER).is_file():
        from atft.validate.pooled import compare_validations

        days = (split or PairedSplit.test).value
        paired = compare_validations(run_a, run_b, days)
        title = f"pooled model RankIC on {days} days, a = {run_a}, b = {run_b}: b - a paired by day"
        emit(json_ready(paired), output, title=title)
        hint("b beats a where t >= 2 (overlap-correct errors); mean, se, t, p, ci are of the daily b - a")
        return
    if split is not None:
        raise typer.BadParameter(
            f"--split pairs two validations (`atft validate` directories); {run_a} and {run_b} are not both one",
            param_hint="--split",
        )
    rows: list[dict[str, Any]] = compare(run_a, run_b)
    emit(json_ready(rows), output, title=f"a = {run_a}, b = {run_b}, diff = b - a")
