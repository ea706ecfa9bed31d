"""The two ways into atft, each ending in a feature panel file: a user's prices, or the synthetic market."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from atft.config import Config
from atft.data.features import build_panel
from atft.data.synth import generate_prices
from atft.errors import OutputExistsError
from atft.runs.files import read_table, write_parquet


def refuse_existing(path: Path, overwrite: bool) -> None:
    """Never replace an output the user did not ask to replace; and say so before the work if it cannot be made."""
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists (pass --overwrite to replace it)")
    if path.is_dir():
        raise OutputExistsError(f"{path}: is a directory; --overwrite replaces files only, choose a file name")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputExistsError(f"{path}: cannot be created, {blocker} is a file, not a directory")


def synthetic_panel(cfg: Config) -> tuple[pa.Table, pa.Table]:
    """(prices, feature panel) of the embedded synthetic market described by ``cfg.synth``."""
    prices = generate_prices(cfg.synth, cfg.data.horizons)
    return prices, build_panel(prices, cfg.features, cfg.data.horizons, source="synthetic prices")


def write_synthetic(cfg: Config, out: Path, prices_out: Path | None = None, overwrite: bool = False) -> pa.Table:
    """Write the synthetic feature panel to ``out`` (and its raw prices to ``prices_out``); returns the panel."""
    for path in (out, prices_out):
        if path is not None:
            refuse_existing(path, overwrite)
    prices, panel = synthetic_panel(cfg)
    if prices_out is not None:
        write_parquet(prices, prices_out)
    write_parquet(panel, out)
    return panel


def build_from_prices(cfg: Config, prices_path: Path, out: Path, overwrite: bool = False) -> pa.Table:
    """Read a user's prices (CSV, CSV.gz or Parquet), build features, write the panel atomically."""
    refuse_existing(out, overwrite)
    prices = read_table(prices_path)
    panel = build_panel(prices, cfg.features, cfg.data.horizons, str(prices_path), cfg.data.min_stocks_per_day)
    write_parquet(panel, out)
    return panel
