"""Long OHLCV prices -> the feature panel of ``docs/panel-format.md``.

Why it is built this way:

* Every per-stock feature is robust-z-scored **across stocks on each date** (median / MAD, clipped). The
  predecessor standardised each stock over its own history, which left 78 of its 82 inputs constant across
  stocks on a date -- useless to a model that ranks stocks within a day.
* Everything is computed on dense ``[D, N]`` (dates x stocks) arrays, vectorised over stocks, so 3,800 stocks
  x 1,250 days build in seconds; the formulas and kernels live in :mod:`atft.data.rolling`.
* No look-ahead: every value at date t (features, market context, ``return_1d``) reads rows ``<= t`` only.
  Only ``target_<h>d`` looks forward, by design.
* Market context (``mkt_*``) is one value per date, standardised over time with the mean and std of every
  date up to t (an expanding window), never across stocks.
* Missing rows are missing observations. The calendar is the union of all dates; a return whose start or end
  row is missing (a suspension, a gap in the file) is NaN, never bridged to the last available close, and
  rolling statistics use the observations present in their window (at least two thirds of it). Targets follow
  the same rule, so ``target_<h>d`` is NaN when the stock has no row h dates later -- never 0.
* Inputs the file lacks (open, high, low, volume, sector) only remove the features that need them;
  :func:`feature_names` and :func:`skipped_features` say which, and the builder logs it.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from atft.config import FeatureConfig
from atft.data.anomalies import price_anomalies
from atft.data.dates import local_dates, time_of_day_problem
from atft.data.rolling import (
    LONG_MEMORY,
    MARKET_GROUPS,
    STOCK_GROUPS,
    VOL_SCALED_RETURNS,
    Group,
    Prices,
    cross_mean,
    expanding_zscore,
    group_mean,
    robust_zscore,
    shift,
)
from atft.errors import DataContractError

SCHEMA_VERSION = b"1"
PRICE_COLUMNS = ("close", "open", "high", "low", "volume")
LABEL_COLUMNS = ("sector", "market")
UNKNOWN = "UNKNOWN"
_ORACLE = re.compile(r"oracle_\w+")  # the synthetic oracle and its parts: passed through, never features
_RESERVED = re.compile(r"(feat_|mkt_|target_).*|return_1d")
_BLOCK = 128  # stocks per block of the per-stock feature computation
_LOG = logging.getLogger(__name__)


def _plan(available_columns: Iterable[str], cfg: FeatureConfig) -> tuple[list[tuple[str, Group]], dict[str, list[str]]]:
    columns = set(available_columns)
    built: list[tuple[str, Group]] = []
    skipped: dict[str, list[str]] = {}
    stock_groups = (
        *STOCK_GROUPS,
        *([VOL_SCALED_RETURNS] if cfg.vol_scaled_returns else []),
        *([LONG_MEMORY] if cfg.long_memory else []),
    )
    for prefix, groups in (("feat_", stock_groups), ("mkt_", MARKET_GROUPS)):
        for group in groups:
            missing = sorted(group.needs - columns)
            if missing:
                skipped.update({prefix + name: missing for name in group.names})
            else:
                built.append((prefix, group))
    return built, skipped


def feature_names(available_columns: Iterable[str], cfg: FeatureConfig) -> list[str]:
    """The engineered ``feat_*`` and ``mkt_*`` columns built from a price file with these columns.

    ``feat_x_<column>`` for extra numeric columns come on top of these.
    """
    built, _ = _plan(available_columns, cfg)
    return [prefix + name for prefix, group in built for name in group.names]


def skipped_features(available_columns: Iterable[str], cfg: FeatureConfig) -> dict[str, list[str]]:
    """Engineered columns that cannot be built from these columns, each with the input columns it lacks."""
    return _plan(available_columns, cfg)[1]


@dataclass(frozen=True)
class _Rows:
    """The validated price file: rows sorted by (date, symbol) and their place in the dense grid."""

    dates: np.ndarray  # [D] days since 1970-01-01, ascending: the union calendar
    symbols: pa.Array  # [N] string, ascending
    day: np.ndarray  # [R] date index of each sorted row
    stock: np.ndarray  # [R] symbol index of each sorted row
    numeric: dict[str, np.ndarray]  # [R] float64: price, extra and oracle columns
    labels: dict[str, list[str]]  # sector and market label of each symbol

    def where(self, row: int) -> str:
        """The key of sorted row ``row``, for messages."""
        date = np.datetime64(int(self.dates[self.day[row]]), "D")
        return f"date={date}, symbol={self.symbols[int(self.stock[row])]}"

    def dense(self, values: np.ndarray) -> np.ndarray:
        """Row values -> [D, N], NaN where a stock has no row."""
        out = np.full((len(self.dates), len(self.symbols)), np.nan)
        out.ravel()[self.flat] = values
        return out

    @functools.cached_property
    def flat(self) -> np.ndarray:
        """[R] where each row sits in a raveled [D, N] array."""
        return self.day * len(self.symbols) + self.stock

    def take(self, dense: np.ndarray) -> np.ndarray:
        """[D, N] -> the float32 value of each row (the inverse of :meth:`dense`)."""
        return dense.ravel()[self.flat].astype(np.float32)


_NO_DAY = np.iinfo(np.int64).min


def _day_numbers(column: pa.ChunkedArray, problems: list[str]) -> np.ndarray | None:
    """Days since the epoch (null or unreadable -> ``_NO_DAY``) from date, timestamp or YYYY-MM-DD text."""
    nulls = np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))
    if len(nulls):
        problems.append(f"date: {len(nulls)} null(s); first at row {nulls[0]}")
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        parsed = pc.strptime(column, format="%Y-%m-%d", unit="s", error_is_null=True)
        bad = np.flatnonzero(pc.and_(pc.is_null(parsed), pc.is_valid(column)).to_numpy(zero_copy_only=False))
        if len(bad):
            problems.append(f"date: {len(bad)} value(s) not YYYY-MM-DD; first {column[int(bad[0])]} at row {bad[0]}")
        column = parsed
    elif not (pa.types.is_date(column.type) or pa.types.is_timestamp(column.type)):
        problems.append(f"date: type {column.type} is not a date; expected date32, timestamp or YYYY-MM-DD text")
        return None
    dates, timed = local_dates(column)
    if len(timed):
        problems.append(time_of_day_problem(column, timed, "date"))
    days = pc.cast(dates, pa.int32()).cast(pa.int64())
    return pc.fill_null(days, _NO_DAY).to_numpy()


def _factorise(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Codes of ``column`` as text (-1 for null) into its sorted distinct non-null values."""
    values = pc.cast(column, pa.string())
    uniques = pc.drop_null(pc.unique(values))
    uniques = pc.take(uniques, pc.sort_indices(uniques))
    return pc.fill_null(pc.index_in(values, value_set=uniques), -1).to_numpy().astype(np.int64), uniques


def _numeric_columns(prices: pa.Table, problems: list[str]) -> dict[str, np.ndarray]:
    """Every numeric input column as float64 (null -> NaN) in file order; reserved or non-numeric ones noted."""
    numeric: dict[str, np.ndarray] = {}
    for name in prices.column_names:
        kind = prices[name].type
        if name in ("date", "symbol", "code", *LABEL_COLUMNS):
            continue
        if _RESERVED.fullmatch(name):
            problems.append(f"{name}: name reserved for the builder's output; rename or drop the column")
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            numeric[name] = pc.cast(prices[name], pa.float64()).to_numpy()
        elif name in PRICE_COLUMNS or _ORACLE.fullmatch(name):
            problems.append(f"{name}: type {kind} is not numeric")
        else:
            _LOG.warning("ignoring non-numeric column %s (%s): extra inputs must be numeric", name, kind)
    return numeric


def _sort_rows(days: np.ndarray, codes: np.ndarray, problems: list[str]) -> tuple[np.ndarray, ...]:
    """(union calendar, day index, file row) of the rows with a date and a symbol, sorted by (date, symbol)."""
    has_symbol = codes >= 0
    if not has_symbol.all():
        problems.append(f"symbol: {np.count_nonzero(~has_symbol)} null(s); first at row {np.argmin(has_symbol)}")
    rows = np.flatnonzero((days != _NO_DAY) & has_symbol)
    if not len(rows):
        return np.empty(0, np.int64), rows, rows
    offset = days[rows] - days[rows].min()
    seen = np.zeros(int(offset.max()) + 1, dtype=bool)
    seen[offset] = True
    day = (np.cumsum(seen) - 1)[offset]
    order = np.argsort(day * (int(codes.max()) + 1) + codes[rows], kind="stable")
    return np.flatnonzero(seen) + days[rows].min(), day[order], rows[order]


def _value_problems(rows: _Rows) -> list[str]:
    """Every row-level rule of the price contract, each with its count and first offending key."""
    x = rows.numeric
    close, opened, high, low = x["close"], x.get("open"), x.get("high"), x.get("low")
    top = close if opened is None else np.fmax(opened, close)
    bottom = close if opened is None else np.fmin(opened, close)
    checks = [
        (
            "date, symbol",
            (np.diff(rows.day, prepend=-1) == 0) & (np.diff(rows.stock, prepend=-1) == 0),
            "duplicated (the key must be unique)",
        ),
        ("close", ~(close > 0) | ~np.isfinite(close), "with close <= 0, non-finite or null"),
    ]
    checks += [
        (c, ~np.isnan(x[c]) & ~((x[c] > 0) & np.isfinite(x[c])), f"with {c} <= 0 or inf")
        for c in ("open", "high", "low")
        if c in x
    ]
    if high is not None:
        checks.append(("high", high < top, "with high < max(open, close)"))
    if low is not None:
        checks.append(("low", low > bottom, "with low > min(open, close)"))
    if high is not None and low is not None:
        checks.append(("high", high < low, "with high < low"))
    if "volume" in x:
        checks.append(("volume", (x["volume"] < 0) | np.isinf(x["volume"]), "with volume < 0 or inf"))
    checks += [(c, np.isinf(x[c]), "that are inf") for c in x if c not in PRICE_COLUMNS]
    problems = []
    for column, bad, what in checks:
        hits = np.flatnonzero(bad)
        if len(hits):
            problems.append(f"{column}: {len(hits)} row(s) {what}; first at {rows.where(int(hits[0]))}")
    return problems


def _static_labels(column: pa.ChunkedArray, rows: _Rows, name: str, problems: list[str]) -> list[str]:
    """One label per symbol: its only non-null value, else UNKNOWN; two different ones are a problem."""
    codes, uniques = _factorise(column)
    n, has = len(rows.symbols), codes >= 0
    low, high = np.full(n, np.iinfo(np.int64).max), np.full(n, -1)
    np.minimum.at(low, rows.stock[has], codes[has])
    np.maximum.at(high, rows.stock[has], codes[has])
    mixed = np.flatnonzero((high >= 0) & (low != high))
    if len(mixed):
        s = int(mixed[0])
        problems.append(
            f"{name}: {len(mixed)} symbol(s) with more than one label (it must be static); "
            f"first symbol={rows.symbols[s]}: {uniques[int(low[s])]} and {uniques[int(high[s])]}"
        )
    return [str(uniques[int(c)]) if c >= 0 else UNKNOWN for c in high]


def _read(prices: pa.Table, source: str) -> _Rows:
    """Check the price file against the contract, collecting every problem, and sort its rows."""
    names = prices.column_names
    symbol = "code" if "code" in names and "symbol" not in names else "symbol"
    if prices.num_rows == 0:  # without rows every column's type is null: say that, not what it implies
        raise DataContractError([f"no rows (columns present: {', '.join(names) or 'none'})"], source=source)
    problems: list[str] = []
    missing = [c for c in ("date", symbol, "close") if c not in names]
    if missing:
        problems.append(
            f"{', '.join(missing)}: required column(s) missing; required: date, symbol (or code), "
            f"close; present: {', '.join(names)}"
        )
    if "symbol" in names and "code" in names:
        problems.append("code: both symbol and code are present; keep one (code is another name for symbol)")
    numeric = _numeric_columns(prices, problems)
    days = _day_numbers(prices["date"], problems) if "date" in names else None
    if missing or days is None or "close" not in numeric:
        raise DataContractError(problems, source=source)
    codes, symbols = _factorise(prices[symbol])
    dates, day, order = _sort_rows(days, codes, problems)
    rows = _Rows(dates, symbols, day, codes[order], {k: v[order] for k, v in numeric.items()}, {})
    problems += _value_problems(rows) if len(order) else ["no rows with both a date and a symbol"]
    labels = {c: _static_labels(prices[c].take(order), rows, c, problems) for c in LABEL_COLUMNS if c in names}
    if problems:
        raise DataContractError(problems, source=source)
    return _Rows(dates, symbols, day, rows.stock, rows.numeric, labels)


def _dense_prices(rows: _Rows) -> Prices:
    """The [D, N] arrays every feature group reads, built once."""
    close = rows.dense(rows.numeric["close"])
    optional = {c: rows.dense(rows.numeric[c]) if c in rows.numeric else None for c in PRICE_COLUMNS[1:]}
    sectors = rows.labels.get("sector", [UNKNOWN] * len(rows.symbols))
    log_close = np.log(close)
    ret = close / shift(close, 1) - 1
    return Prices(
        close=close,
        **optional,
        log_close=log_close,
        log_ret=log_close - shift(log_close, 1),
        ret=ret,
        sector_ret=group_mean(ret, np.unique(sectors, return_inverse=True)[1]),
        mkt_ret=cross_mean(ret),
    )


def _extra_columns(columns: Iterable[str]) -> list[str]:
    """Numeric inputs that are neither prices nor oracles: each becomes ``feat_x_<name>``."""
    return [c for c in columns if c not in PRICE_COLUMNS and not _ORACLE.fullmatch(c)]


def _stock_features(p: Prices, group: Group) -> np.ndarray:
    """The group's raw features, [F, D, N], built block by block of stocks.

    A block's arrays (1,250 dates x 128 stocks = 1.3 MB each) stay in cache and in reused heap memory; whole
    [D, N] temporaries of 38 MB are fresh pages on every allocation, which made the builder 3x slower.
    """
    out = np.empty((len(group.names), *p.close.shape))
    for start in range(0, p.close.shape[1], _BLOCK):
        columns = slice(start, start + _BLOCK)
        for target, values in zip(out, group.build(p.stocks(columns)), strict=True):
            target[:, columns] = values
    return out


def _feature_columns(p: Prices, rows: _Rows, built: list[tuple[str, Group]], clip: float) -> dict[str, np.ndarray]:
    """``feat_*`` (robust z per date over the stocks with a row) then ``mkt_*`` (expanding z), float32 rows."""
    unlisted = np.isnan(p.close)
    stock: dict[str, np.ndarray] = {}
    market: dict[str, np.ndarray] = {}
    for prefix, group in built:
        if prefix == "mkt_":
            for name, values in zip(group.names, group.build(p), strict=True):
                market[prefix + name] = expanding_zscore(values, clip)[rows.day].astype(np.float32)
            continue
        for name, values in zip(group.names, _stock_features(p, group), strict=True):
            values[unlisted] = np.nan  # the cross-section of a date is the stocks that have a row on it
            stock[prefix + name] = rows.take(robust_zscore(values, clip))
    for name in _extra_columns(rows.numeric):
        stock[f"feat_x_{name}"] = rows.take(robust_zscore(rows.dense(rows.numeric[name]), clip))
    return {**stock, **market}


def _check_horizons(horizons: Sequence[int]) -> None:
    if not horizons or any(h < 1 for h in horizons) or len(set(horizons)) != len(horizons):
        raise ValueError(f"horizons must be distinct positive trading-day counts, got {list(horizons)}")


def build_panel(
    prices: pa.Table, cfg: FeatureConfig, horizons: Sequence[int], source: str = "prices", min_stocks_per_day: int = 2
) -> pa.Table:
    """Build the feature panel of ``docs/panel-format.md`` from long OHLCV prices.

    Args:
        prices: one row per (date, symbol); see the "Prices" section of the format document.
        cfg: the feature settings (``clip`` bounds every z-score; ``vol_scaled_returns`` and ``long_memory``
            add their groups).
        horizons: forward-return horizons in trading days; one ``target_<h>d`` column each.
        source: what to call the input in error messages (its file name).
        min_stocks_per_day: a date with fewer stocks is reported (``data.min_stocks_per_day``).

    Returns:
        One row per price row, sorted by (date, code), with schema metadata ``atft.schema_version``.

    Raises:
        DataContractError: the prices break the contract; every problem is listed, each naming its column,
            the number of offending rows and the first offending (date, symbol).
    """
    _check_horizons(horizons)
    rows = _read(prices, source)
    p = _dense_prices(rows)
    dates, symbols = rows.dates.astype("datetime64[D]"), rows.symbols.to_pylist()
    present = np.isfinite(p.close)
    for warning in price_anomalies(p.ret, present, p.volume, dates, symbols, min_stocks_per_day, cfg.clip):
        _LOG.warning("warning: %s: %s", source, warning)
    built, skipped = _plan([*rows.numeric, *rows.labels], cfg)
    if skipped:
        _LOG.warning("%s: %d features skipped for missing input columns: %s", source, len(skipped), skipped)
    floats = _feature_columns(p, rows, built, cfg.clip)
    for h in horizons:
        floats[f"target_{h}d"] = rows.take(shift(p.close, -h) / p.close - 1)
    floats["return_1d"] = rows.take(p.ret)
    floats.update({c: v.astype(np.float32) for c, v in rows.numeric.items() if _ORACLE.fullmatch(c)})
    unknown = [UNKNOWN] * len(rows.symbols)
    columns = {
        "date": pa.array(rows.dates[rows.day].astype(np.int32), type=pa.date32()),
        "code": pc.take(rows.symbols, rows.stock),
        **{c: pc.take(pa.array(rows.labels.get(c, unknown), pa.string()), rows.stock) for c in LABEL_COLUMNS},
        **{name: pa.array(values) for name, values in floats.items()},
    }
    return pa.table(columns).replace_schema_metadata({b"atft.schema_version": SCHEMA_VERSION})
