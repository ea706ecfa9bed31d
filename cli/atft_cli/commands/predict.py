"""``atft predict``: a trained run's forecasts for new dates, written as one Parquet file."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from atft_cli.options import OutputOpt, OverwriteOpt
from atft_cli.output import Format, emit, hint, info


class DeviceChoice(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def predict(
    run: Annotated[
        Path,
        typer.Argument(
            metavar="RUN_DIR",
            help="run directory atft train wrote (its selected weights), or RUN_DIR/checkpoints/step-N",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="forecasts to write (Parquet; one row per date and code)")],
    data: Annotated[
        Path | None, typer.Option("--data", help="feature panel to forecast from (default: the one the run trained on)")
    ] = None,
    prices: Annotated[
        Path | None,
        typer.Option("--prices", help="or raw prices (.parquet, .csv, .csv.gz), built with the run's feature settings"),
    ] = None,
    dates: Annotated[
        str,
        typer.Option(
            "--dates",
            "--date",
            help="'latest' (the newest date with enough stocks), 'all', or YYYY-MM-DD[,YYYY-MM-DD...]",
        ),
    ] = "latest",
    device: Annotated[
        DeviceChoice | None, typer.Option("--device", help="auto | cpu | cuda (default: the run's train.device)")
    ] = None,
    overwrite: OverwriteOpt = False,
    output: OutputOpt = Format.table,
) -> None:
    """Forecast DATES of a panel with a trained run: each horizon's median, quantiles, rank and percentile."""
    from atft.predict.job import predict_run

    result = predict_run(run, out, data, prices, dates, overwrite, None if device is None else device.value)
    summary = result.summary()
    if summary["dates"] == 1:
        emit(_rows(result.table, full=output is not Format.table), output, title=f"{summary['last_date']}: {out}")
        info(f"{summary['rows']} forecasts of {summary['last_date']} written to {out} ({summary['weights']})")
    else:
        emit(summary, output)
    hint(f"columns: docs/predict.md; read them with pyarrow.parquet.read_table('{out}')")


def _rows(table: Any, full: bool) -> list[dict[str, Any]]:
    """The rows of one date: every column for json/yaml; code, median and rank per horizon for the table."""
    names = table.column_names
    if not full:
        keep = ["code"] + [n for n in names if n.startswith(("model_", "rank_")) and "_q" not in n]
        table = table.select(keep)
    return [{k: str(v) if k == "date" else v for k, v in row.items()} for row in table.to_pylist()]
