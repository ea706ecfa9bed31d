"""``atft data``: make, build, check and split feature panels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from atft_cli.options import ConfigOpt, OutputOpt, OverwriteOpt, SetOpt
from atft_cli.output import Format, emit, hint, info

if TYPE_CHECKING:
    import pyarrow as pa

    from atft.config import Config

app = typer.Typer(
    help="Make, build, check and split feature panels.\n\n"
    "Examples:\n\n"
    "  atft data synth --out runs/data/panel.parquet --config debug\n"
    "  atft data check runs/data/panel.parquet\n"
    "  atft data splits runs/data/panel.parquet -o json",
    no_args_is_help=True,
)


def _config(config: Path | None, sets: list[str] | None) -> Config:
    from atft.config import load_config

    return load_config(config, sets or [])


def _summary(panel: pa.Table) -> dict[str, object]:
    names = panel.schema.names
    return {
        "rows": panel.num_rows,
        "stocks": len(panel.column("code").unique()),
        "days": len(panel.column("date").unique()),
        "features": sum(n.startswith("feat_") for n in names),
        "market_features": sum(n.startswith("mkt_") for n in names),
        "targets": [n for n in names if n.startswith("target_")],
    }


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="feature panel to write (Parquet)")],
    prices: Annotated[Path | None, typer.Option("--prices", help="also keep the raw OHLCV here (Parquet)")] = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    overwrite: OverwriteOpt = False,
    output: OutputOpt = Format.table,
) -> None:
    """Write the embedded synthetic market (seeded, with a planted signal and its oracle) as a feature panel.

    Examples:

      atft data synth --out runs/data/panel.parquet                      # the demo market (configs/demo.yaml)
      atft data synth --out panel.parquet --config debug -o json         # 48 stocks x 260 days, in seconds
      atft data synth --out panel.parquet --prices ohlcv.parquet --set synth.n_stocks=200 --overwrite
    """
    from atft.data.sources import write_synthetic

    cfg = _config(config, sets)
    panel = write_synthetic(cfg, out, prices, overwrite)
    emit({"panel": str(out), **_summary(panel)}, output)
    hint(f"next: atft data check {out}")


@app.command()
def build(
    prices: Annotated[Path, typer.Option("--prices", help="long OHLCV: .parquet, .csv or .csv.gz")],
    out: Annotated[Path, typer.Option("--out", help="feature panel to write (Parquet)")],
    config: ConfigOpt = None,
    sets: SetOpt = None,
    overwrite: OverwriteOpt = False,
    output: OutputOpt = Format.table,
) -> None:
    """Build the feature panel (features, market context, forward-return targets) from a user's prices.

    Examples:

      atft data build --prices ohlcv.csv.gz --out panel.parquet          # long OHLCV: date, code, open..volume
      atft data build --prices ohlcv.parquet --out panel.parquet --config sp500 -o json
    """
    from atft.data.sources import build_from_prices

    cfg = _config(config, sets)
    panel = build_from_prices(cfg, prices, out, overwrite)
    emit({"panel": str(out), **_summary(panel)}, output)
    hint(f"next: atft data check {out}")


@app.command()
def check(
    panel_path: Annotated[Path, typer.Argument(metavar="PANEL", help="feature panel (Parquet)")],
    config: ConfigOpt = None,
    sets: SetOpt = None,
    output: OutputOpt = Format.table,
) -> None:
    """Run the data contract on a panel: per-feature statistics, then every violation (exit 2 if any).

    Examples:

      atft data check panel.parquet                                      # a table per feature; exit 2 on a violation
      atft data check panel.parquet --config sp500 -o json               # the contract of a shipped config
    """
    from atft.data.contract import check_panel
    from atft.data.panel import load_panel

    cfg = _config(config, sets)
    panel = load_panel(panel_path, cfg.data.horizons)
    report = check_panel(panel, cfg)
    rows = [
        {
            "feature": name,
            "dead_dates": report.dead_date_fraction[name],
            "missing": report.missing_fraction[name],
            **{f"ic_{h}d": ic for h, ic in report.mean_ic[name].items()},
        }
        for name in panel.feature_names
    ]
    emit(rows, output, title=f"{panel_path}: {report.n_rows} rows, {report.n_stocks} stocks, {report.n_days} days")
    for note in report.notes:
        info(f"warning: {panel_path}: {note}")
    report.raise_if_failed(str(panel_path))
    info(f"{panel_path}: data contract passed ({len(panel.feature_names)} features, {report.thin_days} thin days)")


@app.command()
def splits(
    panel_path: Annotated[Path, typer.Argument(metavar="PANEL", help="feature panel (Parquet)")],
    config: ConfigOpt = None,
    sets: SetOpt = None,
    output: OutputOpt = Format.table,
) -> None:
    """Print the walk-forward folds (train | purge | val | embargo | test) over the panel's calendar.

    Examples:

      atft data splits panel.parquet
      atft data splits panel.parquet --set split.n_folds=5 -o yaml
    """
    from atft.data.panel import read_calendar
    from atft.data.splits import fold_table, walk_forward

    cfg = _config(config, sets)
    dates = read_calendar(panel_path)
    folds = walk_forward(dates, cfg, calendar=str(panel_path))
    emit(fold_table(folds, dates), output, title=f"purge {cfg.purge_days} days, embargo {cfg.embargo_days} days")
