"""The dense in-memory panel: one copy of the data, laid out for serving whole trading days.

The feature Parquet (``docs/panel-format.md``) is long: one row per (date, code). Training wants, for a
day t, the lookback window of every stock that traded: ``features[t-T+1:t+1, stocks, :]``. So the panel is
held once as dense arrays indexed [day, stock, ...] with NaN for "no value"; lookback windows are strided
views of it (``torch.Tensor.unfold``), never per-sample copies.

Loading streams the file one row group at a time and scatters each into the dense arrays in small
cache-sized tiles, so peak memory stays near the dense panel itself and the time near pyarrow's own read.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from atft.data.dates import local_dates, time_of_day_problem
from atft.errors import DataContractError, InputFileError

FEATURE_PREFIX = "feat_"
MARKET_PREFIX = "mkt_"
RETURN_COLUMN = "return_1d"
KEY_COLUMNS = ("date", "code")
LABEL_COLUMNS = ("sector", "market")
_TARGET = re.compile(r"^target_(\d+)d$")
ORACLE_PREFIX = "oracle_"
_ORACLE = re.compile(r"^oracle_(\d+)d$")
_TILE_ROWS = 2048


@dataclass(frozen=True)
class DensePanel:
    """Dense [day, stock, ...] arrays of one feature panel. NaN means "no value" everywhere.

    Attributes:
        dates: [D] ``datetime64[D]``, increasing.
        codes: [N] stock codes, sorted.
        feature_names / market_feature_names: column names of the last axis of ``features`` / ``market``.
        horizons: forward-return horizons in days, the last axis of ``targets`` (and ``oracle``).
        features: [D, N, F] float32 per-stock inputs (cross-sectionally z-scored by the builder).
        market: [D, M] float32 market-context inputs (one value per day).
        targets: [D, N, H] float32 forward simple returns; NaN = no label.
        returns: [D, N] float32 trailing 1-day simple returns (graph input only).
        present: [D, N] bool, the stock has a row that day.
        sector_id / market_id: [N] int64 indices into ``sectors`` / ``markets``.
        oracle: [D, N, H] float32 a forecast the file gives per horizon (``oracle_<h>d``), used as is, or None.
        oracle_inputs: [D, N, K] float32 every other ``oracle_*`` column, named by ``oracle_input_names``: the
            synthetic market's oracle in parts, which :mod:`atft.baselines.oracle` assembles per fold; or None.
    """

    dates: np.ndarray
    codes: np.ndarray
    feature_names: list[str]
    market_feature_names: list[str]
    horizons: list[int]
    features: torch.Tensor
    market: torch.Tensor
    targets: torch.Tensor
    returns: torch.Tensor
    present: torch.Tensor
    sector_id: torch.Tensor
    market_id: torch.Tensor
    sectors: list[str]
    markets: list[str]
    oracle: torch.Tensor | None
    source: str
    oracle_inputs: torch.Tensor | None = None
    oracle_input_names: list[str] = field(default_factory=list)

    @property
    def n_days(self) -> int:
        return len(self.dates)

    @property
    def n_stocks(self) -> int:
        return len(self.codes)

    @property
    def nbytes(self) -> int:
        """Bytes held by the dense arrays (the figure peak memory is compared with)."""
        arrays = [self.features, self.market, self.targets, self.returns, self.present]
        arrays += [a for a in (self.oracle, self.oracle_inputs) if a is not None]
        return sum(a.element_size() * a.nelement() for a in arrays)

    def share_memory_(self) -> DensePanel:
        """Move the arrays to shared memory so DataLoader workers (spawn) map them instead of copying."""
        optional = (self.oracle, self.oracle_inputs)
        for tensor in (self.features, self.market, self.targets, self.returns, self.present, *optional):
            if tensor is not None:
                tensor.share_memory_()
        return self


@dataclass(frozen=True)
class _Layout:
    """Which column of the file goes where."""

    features: list[str]
    market: list[str]
    targets: list[str]
    oracle: list[str]
    oracle_inputs: list[str]
    horizons: list[int]


def _layout(schema: pa.Schema, horizons: list[int], source: str) -> _Layout:
    names = schema.names
    problems = [f"column '{c}' is missing (required)" for c in (*KEY_COLUMNS, RETURN_COLUMN) if c not in names]
    features = [c for c in names if c.startswith(FEATURE_PREFIX)]
    market = [c for c in names if c.startswith(MARKET_PREFIX)]
    if not features:
        problems.append(f"no feature columns (names starting with '{FEATURE_PREFIX}')")
    targets, oracle = [], []
    available = sorted(int(m.group(1)) for c in names if (m := _TARGET.match(c)))
    for h in horizons:
        if f"target_{h}d" not in names:
            problems.append(f"column 'target_{h}d' is missing for horizon {h}; horizons in the file: {available}")
        targets.append(f"target_{h}d")
        if f"oracle_{h}d" in names:
            oracle.append(f"oracle_{h}d")
    oracle_inputs = [c for c in names if c.startswith(ORACLE_PREFIX) and not _ORACLE.match(c)]
    numeric = [*features, *market, *targets, *oracle, *oracle_inputs, RETURN_COLUMN]
    for col in numeric:
        if col in names and not (
            pa.types.is_floating(schema.field(col).type) or pa.types.is_integer(schema.field(col).type)
        ):
            problems.append(f"column '{col}' has type {schema.field(col).type}; allowed: float32, float64, integer")
    if problems:
        raise DataContractError(problems, source=source)
    complete = oracle if len(oracle) == len(horizons) else []
    return _Layout(features, market, targets, complete, oracle_inputs, horizons)


def _open(path: Path) -> pq.ParquetFile:
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory, not a file; a panel is one Parquet file")
    if not path.is_file():
        raise InputFileError(f"{path}: no such panel file")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFileError(f"{path}: not a readable Parquet file ({exc})") from exc
    repeated = sorted(c for c, k in Counter(pf.schema_arrow.names).items() if k > 1)
    if repeated:  # every lookup by name would be ambiguous, so this is reported before anything else
        problems = [f"column '{c}' appears twice or more; column names must be unique" for c in repeated]
        raise DataContractError(problems, str(path))
    return pf


def _keys(pf: pq.ParquetFile, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read and check (date, code): returns dates [D], codes [N], day index and stock index per row."""
    keys = pf.read(columns=list(KEY_COLUMNS))
    date_col, code_col = keys.column("date"), keys.column("code")
    problems = [
        f"column '{c}' has {keys.column(c).null_count} null key(s)" for c in KEY_COLUMNS if keys.column(c).null_count
    ]
    if not (pa.types.is_date(date_col.type) or pa.types.is_timestamp(date_col.type)):
        problems.append(f"column 'date' has type {date_col.type}; allowed: date32, timestamp")
    if not (pa.types.is_string(code_col.type) or pa.types.is_large_string(code_col.type)):
        problems.append(f"column 'code' has type {code_col.type}; allowed: string")
    if keys.num_rows == 0:
        problems.append("no rows: the file holds a schema but no (date, code) rows")
    if problems:
        raise DataContractError(problems, source=source)
    dates, timed = local_dates(date_col)
    if len(timed):
        raise DataContractError([time_of_day_problem(date_col, timed, "column 'date'")], source=source)
    days = np.asarray(dates.to_numpy(zero_copy_only=False)).astype("datetime64[D]")
    encoded = pc.dictionary_encode(code_col).combine_chunks()
    dictionary = np.asarray(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    order = np.argsort(dictionary)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    stock_idx = rank[encoded.indices.to_numpy()]
    day_int = days.astype(np.int64)
    _check_sorted(day_int, stock_idx, days, dictionary[order], source)
    starts = np.flatnonzero(np.diff(day_int, prepend=day_int[0] - 1))
    day_idx = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(day_int))))
    return days[starts], dictionary[order], day_idx, stock_idx


def _check_sorted(day_int: np.ndarray, stock_idx: np.ndarray, days: np.ndarray, codes: np.ndarray, source: str) -> None:
    step_day = np.diff(day_int)
    if (bad := np.flatnonzero(step_day < 0)).size:
        i = bad[0] + 1
        raise DataContractError([f"rows not sorted by date: row {i} ({days[i]}) comes after {days[i - 1]}"], source)
    same_day = step_day == 0
    step_code = np.diff(stock_idx)
    if (dup := np.flatnonzero(same_day & (step_code == 0))).size:
        i = dup[0] + 1
        raise DataContractError(
            [f"duplicate key (date, code) = ({days[i]}, {codes[stock_idx[i]]}): {dup.size} duplicate row(s)"], source
        )
    if (bad := np.flatnonzero(same_day & (step_code < 0))).size:
        i = bad[0] + 1
        raise DataContractError(
            [f"rows not sorted by code within date {days[i]} (row {i}, {codes[stock_idx[i]]})"], source
        )


def _scatter(target: np.ndarray, rows: np.ndarray, columns: list[np.ndarray]) -> None:
    """``target[rows[i], j] = columns[j][i]`` through a small transposed tile (cache-friendly)."""
    width = len(columns)
    tile = np.empty((width, _TILE_ROWS), dtype=target.dtype)
    contiguous = rows.size > 0 and rows[-1] - rows[0] == rows.size - 1
    for start in range(0, rows.size, _TILE_ROWS):
        stop = min(rows.size, start + _TILE_ROWS)
        n = stop - start
        for j, col in enumerate(columns):
            tile[j, :n] = col[start:stop]
        if contiguous:
            target[rows[start] : rows[start] + n] = tile[:, :n].T
        else:
            target[rows[start:stop]] = tile[:, :n].T


def _column(batch: pa.Table, name: str) -> np.ndarray:
    """A float32 numpy view (copy only when the file's type differs); nulls become NaN."""
    array = batch.column(name)
    if array.null_count:
        array = pc.fill_null(pc.cast(array, pa.float32()), np.float32("nan"))
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float32)


def _labels(pf: pq.ParquetFile, name: str, last_row: np.ndarray) -> tuple[torch.Tensor, list[str]]:
    """Static per-stock label (its value on the stock's last row); ``UNKNOWN`` where absent."""
    if name not in pf.schema_arrow.names:
        return torch.zeros(len(last_row), dtype=torch.int64), ["UNKNOWN"]
    values = pf.read(columns=[name]).column(name)
    values = pc.fill_null(pc.cast(values, pa.string()), "UNKNOWN").take(pa.array(last_row))
    encoded = pc.dictionary_encode(values).combine_chunks()
    names = encoded.dictionary.to_pylist()
    order = np.argsort(names)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return torch.from_numpy(rank[encoded.indices.to_numpy()]), [names[i] for i in order]


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A damaged data page surfaces only when it is read: name the file instead of raising pyarrow's error."""
    try:
        yield
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFileError(f"{path}: cannot read, the Parquet file is damaged ({exc})") from exc


def load_panel(path: str | Path, horizons: list[int]) -> DensePanel:
    """Load a feature panel file into a :class:`DensePanel`; structural faults are DataContractErrors."""
    with _reading(Path(path)):
        return _load_panel(Path(path), horizons)


def _load_panel(path: Path, horizons: list[int]) -> DensePanel:
    source = str(path)
    pf = _open(path)
    layout = _layout(pf.schema_arrow, horizons, source)
    dates, codes, day_idx, stock_idx = _keys(pf, source)
    n_days, n_stocks = len(dates), len(codes)
    flat = day_idx * n_stocks + stock_idx
    groups = {
        "features": layout.features,
        "targets": layout.targets,
        "oracle": layout.oracle,
        "oracle_inputs": layout.oracle_inputs,
        "returns": [RETURN_COLUMN],
    }
    dense = {k: np.empty((n_days * n_stocks, len(cols)), np.float32) for k, cols in groups.items() if cols}
    complete = flat.size == n_days * n_stocks
    if not complete:
        missing = np.ones(n_days * n_stocks, dtype=bool)
        missing[flat] = False
        for array in dense.values():
            array[missing] = np.nan
    market = np.full((n_days, len(layout.market)), np.nan, np.float32)
    wanted = [c for cols in groups.values() for c in cols] + layout.market
    offset = 0
    with ThreadPoolExecutor(max_workers=1) as reader:
        # a row group at a time (pyarrow decodes its columns in parallel), the next one decoded while this
        # one is scattered: peak memory is the dense panel plus two row groups
        ahead = reader.submit(pf.read_row_group, 0, columns=wanted, use_threads=True)
        for group in range(pf.num_row_groups):
            batch = ahead.result()
            if group + 1 < pf.num_row_groups:
                ahead = reader.submit(pf.read_row_group, group + 1, columns=wanted, use_threads=True)
            rows = flat[offset : offset + batch.num_rows]
            for key, cols in groups.items():
                if cols:
                    _scatter(dense[key], rows, [_column(batch, c) for c in cols])
            _scatter_market(market, day_idx[offset : offset + batch.num_rows], batch, layout.market, dates, source)
            offset += batch.num_rows
    row_of = np.full(n_days * n_stocks, -1, dtype=np.int64)
    row_of[flat] = np.arange(flat.size)
    last_row = row_of.reshape(n_days, n_stocks).max(axis=0)
    sector_id, sectors = _labels(pf, "sector", last_row)
    market_id, markets = _labels(pf, "market", last_row)
    present = torch.from_numpy((row_of >= 0).reshape(n_days, n_stocks))
    n_h = len(horizons)
    return DensePanel(
        dates=dates,
        codes=codes,
        feature_names=[c.removeprefix(FEATURE_PREFIX) for c in layout.features],
        market_feature_names=[c.removeprefix(MARKET_PREFIX) for c in layout.market],
        horizons=list(horizons),
        features=torch.from_numpy(dense["features"]).view(n_days, n_stocks, -1),
        market=torch.from_numpy(market),
        targets=torch.from_numpy(dense["targets"]).view(n_days, n_stocks, n_h),
        returns=torch.from_numpy(dense["returns"]).view(n_days, n_stocks),
        present=present,
        sector_id=sector_id,
        market_id=market_id,
        sectors=sectors,
        markets=markets,
        oracle=torch.from_numpy(dense["oracle"]).view(n_days, n_stocks, n_h) if "oracle" in dense else None,
        source=source,
        oracle_inputs=(
            torch.from_numpy(dense["oracle_inputs"]).view(n_days, n_stocks, -1) if "oracle_inputs" in dense else None
        ),
        oracle_input_names=layout.oracle_inputs,
    )


def _scatter_market(
    market: np.ndarray, days: np.ndarray, batch: pa.Table, names: list[str], dates: np.ndarray, source: str
) -> None:
    """Market context is one value per day: take it from the day's rows and insist they all agree."""
    for j, name in enumerate(names):
        values = _column(batch, name)
        before = market[days, j]
        market[days, j] = values  # any row of the day; agreement with every other row is checked next
        after = market[days, j]
        same = (after == values) & ((before == values) | np.isnan(before))
        same |= np.isnan(values) & np.isnan(after)
        if not same.all():
            day = dates[days[int(np.flatnonzero(~same)[0])]]
            raise DataContractError(
                [f"column '{name}' is market context (mkt_*) but differs across stocks on {day}"], source
            )


def read_calendar(path: str | Path) -> np.ndarray:
    """The panel's trading dates [D] (keys checked as in a full load), without loading the values."""
    path = Path(path)
    with _reading(path):
        dates, _, _, _ = _keys(_open(path), str(path))
    return dates
