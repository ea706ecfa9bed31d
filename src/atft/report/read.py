"""Reading a run directory: its config, its records and its prediction rows, as the report judges them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from atft.config import Config, build_config, read_yaml
from atft.errors import InputFileError
from atft.runs.files import read_table
from atft.telemetry.events import read_stream
from atft.telemetry.events import records as stream_records

SPLITS = ("val", "test")
SOURCES = ("model", "momentum", "reversal", "ridge", "lightgbm", "oracle")
RUN_FILES = ("config.yaml", "events.jsonl", "predictions.parquet")
REQUIRED_FILES = RUN_FILES[:2]
"""A run that stopped before evaluation has no predictions.parquet; without these two there is no run."""
NO_PREDICTIONS = "no predictions.parquet: the run stopped before evaluation"


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
    torn_line: int | None = None  # events.jsonl's unterminated last line, dropped (the writer was killed)

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

    ``predictions.parquet`` may be missing (the run stopped before evaluation); config.yaml and events.jsonl not.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise InputFileError(f"{path}: no such run directory (expected {', '.join(RUN_FILES)} in it)")
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise InputFileError(f"{path / name}: no such file; a run directory holds {', '.join(RUN_FILES)}")
    cfg = build_config(read_yaml(path / "config.yaml"), source=str(path / "config.yaml"))
    events, torn = read_stream(path / "events.jsonl")
    records = stream_records(events)
    evaluated = (path / "predictions.parquet").is_file()
    splits = _read_predictions(path / "predictions.parquet", cfg.data.horizons) if evaluated else {}
    return Run(path, cfg, records, splits, evaluated, torn)


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
