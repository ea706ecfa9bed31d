"""``atft validate``: walk-forward validation -- every fold trained from scratch, pooled out-of-sample report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from atft_cli.options import ConfigOpt, SeedsOpt, SetOpt, parse_seeds
from atft_cli.output import Format, emit, hint, info

EXAMPLES = """Examples:

  atft validate --out runs/wf                                  # the synthetic market, yearly test windows
  atft validate --data sp500.parquet --config configs/sp500.yaml --out runs/sp500 --jobs 2
  atft validate --out runs/wf --seeds 0,1,2                    # every fold for each seed; the ensemble too
  atft validate --out runs/wf --resume auto                    # continue a killed validation
  atft validate --out runs/wf-nograph --set model.graph.enabled=false; atft report runs/wf runs/wf-nograph
  atft validate --out /runs/wf-nightly --seeds 0,1 --report-only   # fold runs written by cluster jobs
"""


def validate(
    config: ConfigOpt = None,
    data: Annotated[Path | None, typer.Option("--data", help="feature panel; default: the synthetic market")] = None,
    sets: SetOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="validation directory (default: runs/validate-<time>)")
    ] = None,
    seeds: SeedsOpt = "0",
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="fold runs in parallel processes")] = 1,
    resume: Annotated[
        str | None, typer.Option("--resume", help="'auto': continue the validation in --out with its unfinished folds")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace a validation in --out")] = False,
    report_only: Annotated[
        bool,
        typer.Option(
            "--report-only",
            help="train nothing: plan the folds over the run directories already in --out/runs (one cluster job "
            "per fold wrote them) and write the pooled report",
        ),
    ] = False,
    output: Annotated[Format, typer.Option("--output", "-o", help="table | json | yaml")] = Format.table,
) -> None:
    """Train every walk-forward fold from scratch (split.* keys), then pool their test days into one report."""
    from atft.config import load_config
    from atft.validate.pooled import headline, write_validation_report
    from atft.validate.runner import adopt_validation, open_validation, run_plan

    if resume not in (None, "auto"):
        raise typer.BadParameter(f"{resume!r}: the only value is auto", param_hint="--resume")
    if report_only and (out is None or overwrite or resume):
        raise typer.BadParameter("--report-only reads the fold runs in --out: give --out, without --overwrite/--resume")
    cfg = load_config(config, sets or [])
    parent = out or Path("runs") / time.strftime("validate-%Y%m%d-%H%M%S")
    if report_only:
        parent, plan = adopt_validation(cfg, parent, data, parse_seeds(seeds))
    else:
        parent, plan = open_validation(cfg, parent, data, parse_seeds(seeds), resume == "auto", overwrite)
        info(f"{parent}: {len({r.fold for r in plan.runs})} folds x {len(plan.seeds)} seed(s) on {plan.panel}")
        run_plan(parent, plan, jobs, say=info)
    report = write_validation_report(parent)
    emit(headline(report), output, title=f"{parent}: pooled out-of-sample ({report['n_test_days']} test days)")
    if report["missing_runs"]:
        missing = report["missing_runs"]
        hint(f"{len(missing)} of {len(plan.runs)} fold runs unfinished: {', '.join(missing)}")
    hint(f"report: {parent / 'report.md'}; compare validations with: atft report {parent} OTHER")


validate.__doc__ = f"{validate.__doc__}\n\n{EXAMPLES}"
