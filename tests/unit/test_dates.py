"""Trading dates: midnight timestamps are dates, a time of day is refused, time zones read locally."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from atft.data.dates import local_dates, time_of_day_problem


def _timestamps(values: list[str | None], tz: str | None = None) -> pa.ChunkedArray:
    stamps = np.array(values, dtype="datetime64[ns]")
    array = pa.array(stamps, pa.timestamp("ns"))
    if tz is not None:
        array = pa.array(stamps.astype(np.int64), pa.timestamp("ns", tz=tz))
    return pa.chunked_array([array])


def test_midnight_timestamps_and_nulls_are_dates() -> None:
    dates, timed = local_dates(_timestamps(["2021-01-04T00:00", None, "2021-01-05T00:00"]))
    assert dates.to_pylist()[0].isoformat() == "2021-01-04" and dates.null_count == 1
    assert timed.size == 0


def test_a_time_of_day_is_found_and_named_with_its_row() -> None:
    column = _timestamps(["2021-01-04T00:00", "2021-01-05T15:30", "2021-01-06T00:00:01"])
    _, timed = local_dates(column)
    assert timed.tolist() == [1, 2]
    message = time_of_day_problem(column, timed, "column 'date'")
    assert "column 'date': 2 timestamp(s) with a time of day" in message and "at row 1" in message
    assert "2021-01-05 15:30:00" in message


def test_a_zoned_timestamp_is_read_in_its_own_zone() -> None:
    # 05:00 UTC is midnight in New York: the trading date is the local one, 2021-01-04, and it is a date
    column = _timestamps(["2021-01-04T05:00"], tz="America/New_York")
    dates, timed = local_dates(column)
    assert dates.to_pylist()[0].isoformat() == "2021-01-04" and timed.size == 0
    _, timed = local_dates(_timestamps(["2021-01-04T00:00"], tz="America/New_York"))  # 19:00 the day before
    assert timed.tolist() == [0]


def test_a_date_column_passes_through() -> None:
    column = pa.chunked_array([pa.array([18631, None], pa.date32())])
    dates, timed = local_dates(column)
    assert dates.equals(column) and timed.size == 0
