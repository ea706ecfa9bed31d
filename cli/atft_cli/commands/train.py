"""``atft train``: the same job the container runs, here on this machine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from atft_cli.options import ConfigOpt, SetOpt
from atft_cli.output import Format, emit, hint


def train(
    config: ConfigOpt = None,
    data: Annotated[Path | None, typer.Option("--data", help="feature panel; default: the synthetic market")] = None,
    sets: SetOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="run directory (default: runs/<timestamp>)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing run directory")] = False,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="'auto': continue from the newest good checkpoint in --out (fresh start when there is none); "
            "or the path of one checkpoint directory",
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="show the progress bar")] = True,
    output: Annotated[Format, typer.Option("--output", "-o", help="table | json | yaml")] = Format.table,
) -> None:
    """Train ATFT-GAT-FAN (default: configs/demo.yaml settings on the embedded synthetic market), then report."""
    from atft.config import load_config
    from atft.train.job import run_training

    cfg = load_config(config, sets or [])
    run_dir = out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    result, report = run_training(cfg, run_dir, data, overwrite, progress, resume)
    rows = [
        {
            "objective": o["name"],
            "result": "PASS" if o["passed"] else "FAIL",
            "value": o["value"],
            "threshold": o["threshold"],
        }
        for o in report["objectives"]
    ]
    emit(rows, output, title=f"{run_dir}: best epoch {result.best_epoch}")
    hint(f"report: {run_dir}/report.md; compare runs with: atft report {run_dir} OTHER_RUN")
