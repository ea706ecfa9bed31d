"""Trading dates from a date or timestamp column: the one rule both the price reader and the panel reader use.

A date column holds dates. A timestamp is accepted when it is a date written as a timestamp (midnight,
as pandas writes ``datetime64`` dates), read in its own time zone: the trading date is the local one,
not UTC's. A timestamp with a time of day is refused, never truncated to its date: two intraday rows of
one stock would silently become one trading day, and a bar stamped at the close in UTC could land on the
wrong date.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def local_dates(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
    """``column`` (date32 or timestamp) as date32, and the row numbers whose timestamp has a time of day."""
    if not pa.types.is_timestamp(column.type):
        return pc.cast(column, pa.date32()), np.zeros(0, dtype=np.int64)
    if column.type.tz is not None:
        column = pc.local_timestamp(column)
    dates = pc.cast(column, pa.date32())
    timed = pc.fill_null(pc.not_equal(column, pc.cast(dates, column.type)), False)
    return dates, np.flatnonzero(timed.to_numpy(zero_copy_only=False))


def time_of_day_problem(column: pa.ChunkedArray, rows: np.ndarray, where: str) -> str:
    """The contract message for a date column holding times of day, naming the first row and value."""
    first = int(rows[0])
    return (
        f"{where}: {len(rows)} timestamp(s) with a time of day, first {column[first]} at row {first}; "
        "a date column holds trading dates (midnight timestamps or YYYY-MM-DD), never intraday times"
    )
