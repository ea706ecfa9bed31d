"""The fuzz corpus: malformed inputs generated deterministically from small valid ones.

Why generated and not committed: each case is one named fault planted in a known-good input, so the corpus
stays a few hundred lines of code instead of megabytes of files, and a reader sees exactly what each file
breaks. Every case writes its inputs into its own directory under the corpus root; the test runs one ``atft``
command on them and checks the exit code, the words of the error and that the directory holds exactly the
files it held before (no output, no temporary file, no half-written run directory).

Layout under the root (families): ``configs/``, ``panels/``, ``prices/``, ``runs/`` (``atft report``),
``train/`` (``atft train``: config-vs-data mismatches and ``--out`` that cannot be a run directory),
``checkpoints/`` (``--resume PATH``: corrupt, foreign or unrestorable checkpoints), ``resume/``
(``--resume auto`` and ``--overwrite`` on directories atft did not create or cannot continue),
``exporter/`` (``atft exporter`` setup faults) and ``container/`` (``python -m atft.train``, what the
training image runs, as a real process).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from factories import make_panel_table, make_run

FAMILIES = ("configs", "panels", "prices", "runs", "train", "checkpoints", "resume", "exporter", "container")

# A config the base panel (40 days x ~28 stocks, horizons 1 and 5) satisfies, small enough to train in seconds.
BASE_CONFIG = {
    "data": {"horizons": [1, 5], "lookback": 5, "min_stocks_per_day": 10, "max_stocks_per_batch": 32},
    "graph": {"window": 10, "halflife": 5.0, "min_observations": 5, "top_k": 4},
    "split": {"test_window": "days", "n_folds": 1, "val_days": 5, "test_days": 5, "min_train_days": 10},
    "model": {"hidden_size": 16, "attention_heads": 2, "graph": {"heads": [2, 2]}},
    "train": {"epochs": 1, "warmup_steps": 2, "select_horizon": 5},
    "report": {"horizon": 5},
}


@dataclass(frozen=True)
class Invocation:
    """One command of a case: its arguments, the exit code it must give and the words its error must hold."""

    argv: list[str]
    expect: tuple[str, ...]
    code: int = 2
    names: Path | str | None = None  # the input the error must name: a file, or the option or variable given
    env: dict[str, str] = field(default_factory=dict)
    module: str = "atft_cli"  # what a real process runs: ``python -m MODULE ARGV``


@dataclass(frozen=True)
class Corpus:
    """The corpus root and the valid inputs every case starts from."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "base" / "config.yaml"

    @property
    def panel(self) -> Path:
        return self.root / "base" / "panel.parquet"

    def dir(self, family: str, name: str) -> Path:
        path = self.root / family / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def write_base(root: Path) -> Corpus:
    """The valid inputs: a config, a panel (``factories.make_panel_table``), prices and a run directory."""
    corpus = Corpus(root)
    corpus.panel.parent.mkdir(parents=True)
    corpus.config.write_text(yaml.safe_dump(BASE_CONFIG, sort_keys=False))
    pq.write_table(base_panel(), corpus.panel)
    pacsv.write_csv(base_prices(), root / "base" / "prices.csv")
    make_run(root / "base" / "run")
    return corpus


def base_panel() -> pa.Table:
    return make_panel_table(n_days=40, n_stocks=30, seed=0)


def base_prices(n_days: int = 40, n_symbols: int = 8, seed: int = 0) -> pa.Table:
    """Long OHLCV of a random-walk market: every row obeys low <= open, close <= high and volume >= 0."""
    rng = np.random.default_rng(seed)
    dates = np.busday_offset(np.datetime64("2021-01-04"), np.arange(n_days), roll="forward")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_days, n_symbols)), axis=0))
    opened = close * np.exp(rng.normal(0, 0.005, close.shape))
    high = np.maximum(opened, close) * (1 + rng.uniform(0, 0.01, close.shape))
    low = np.minimum(opened, close) * (1 - rng.uniform(0, 0.01, close.shape))
    day, sym = (a.ravel() for a in np.meshgrid(np.arange(n_days), np.arange(n_symbols), indexing="ij"))
    return pa.table(
        {
            "date": pa.array([str(d) for d in dates[day]]),
            "symbol": pa.array([f"S{i:02d}" for i in sym]),
            "open": opened.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": rng.integers(1_000, 100_000, day.size).astype(np.float64),
            "sector": pa.array([f"SEC{i % 3}" for i in sym]),
        }
    )


# --- table surgery ---------------------------------------------------------------------------------


def put(table: pa.Table, column: str, rows: list[int] | slice, value: object) -> pa.Table:
    """``table`` with ``column[rows] = value`` (the column keeps its type where the value allows)."""
    values = table.column(column).to_pylist()
    for i in range(len(values))[rows] if isinstance(rows, slice) else rows:
        values[i] = value
    if isinstance(value, str):  # text among numbers: the whole column becomes text, as in a hand-edited CSV
        values = [v if isinstance(v, str) or v is None else str(v) for v in values]
        array = pa.array(values, type=pa.string())
    else:
        array = pa.array(values, type=table.schema.field(column).type)
    return table.set_column(table.schema.get_field_index(column), column, array)


def replace(table: pa.Table, column: str, values: object) -> pa.Table:
    return table.set_column(table.schema.get_field_index(column), column, pa.array(values))


def numbers(table: pa.Table, column: str) -> np.ndarray:
    return np.asarray(table.column(column).to_numpy(zero_copy_only=False), dtype=np.float64).copy()


def swap_rows(table: pa.Table, i: int, j: int) -> pa.Table:
    order = np.arange(table.num_rows)
    order[[i, j]] = order[[j, i]]
    return table.take(pa.array(order))


def first_row_of_day(table: pa.Table, day: int) -> int:
    dates = table.column("date").to_numpy()
    return int(np.flatnonzero(dates == np.unique(dates)[day])[0])


def keep_days_with(table: pa.Table, day: int, n_stocks: int) -> pa.Table:
    """``table`` with only the first ``n_stocks`` stocks left on its ``day``-th date."""
    dates = table.column("date").to_numpy()
    on_day = np.flatnonzero(dates == np.unique(dates)[day])
    keep = np.ones(table.num_rows, dtype=bool)
    keep[on_day[n_stocks:]] = False
    return table.filter(pa.array(keep))


def per_date(table: pa.Table, seed: int) -> np.ndarray:
    """One random value per date, repeated on every row of that date (constant across stocks)."""
    _, day = np.unique(table.column("date").to_numpy(), return_inverse=True)
    return np.random.default_rng(seed).standard_normal(day.max() + 1)[day].astype(np.float32)


def make_dir(path: Path) -> Path:
    path.mkdir()
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def write_table(path: Path, table: pa.Table) -> Path:
    """Parquet or CSV (optionally gzipped) by the file name."""
    if path.name.endswith(".parquet"):
        pq.write_table(table, path)
    elif path.name.endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            pacsv.write_csv(table, fh)
    else:
        pacsv.write_csv(table, path)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    return write_bytes(path, data[: int(len(data) * keep)])


def scramble(path: Path, start: float = 0.3, length: int = 512) -> Path:
    """Overwrite ``length`` bytes from ``start`` (a fraction of the file) with noise: a damaged data page."""
    data = bytearray(path.read_bytes())
    at = int(len(data) * start)
    data[at : at + length] = np.random.default_rng(0).integers(0, 256, length, dtype=np.uint8).tobytes()
    return write_bytes(path, bytes(data))


def write_yaml(path: Path, tree: object) -> Path:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def with_key(tree: dict, dotted: str, value: object) -> dict:
    """A deep copy of ``tree`` with ``dotted`` set to ``value``."""
    out = json.loads(json.dumps(tree))
    node = out
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return out


CaseFn = Callable[[Corpus], Invocation]
