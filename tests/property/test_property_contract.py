"""Properties of the data contract over corruptions hypothesis invents.

A valid panel is written to Parquet with a few random corruptions (cells set to NaN, ±Inf, 0, huge values
or null; columns dropped, retyped, renamed or made constant; rows duplicated, reordered or removed). Loading and
checking it either passes or raises an error the CLI turns into exit code 2 (:class:`DataContractError`,
or :class:`InputFileError` for a file pyarrow cannot read), never another exception. And a panel that
passes really has what the contract promises: finite values, unique sorted keys, two stocks or more a day.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atft.config import load_config
from atft.data.contract import check_panel
from atft.data.panel import load_panel
from atft.errors import AtftError, DataContractError, InputFileError
from factories import HORIZONS, make_panel_table

CFG = load_config(None, ["data.horizons=[1, 5]", "data.min_stocks_per_day=10"], environ={})
BASE = make_panel_table(n_days=30, n_stocks=20, seed=3)
CELL_VALUES = [np.nan, np.inf, -np.inf, 0.0, 1e30, -1e30, None]


def _set_cells(table: pa.Table, column: str, rows: list[int], value: float | None) -> pa.Table:
    values = table.column(column).to_pylist()
    for i in rows:
        values[i % len(values)] = value
    try:
        array = pa.array(values, type=table.schema.field(column).type, from_pandas=False)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):  # a float into a date or text column
        array = pa.array([None if v is None else str(v) for v in values])
    return table.set_column(table.schema.get_field_index(column), column, array)


@st.composite
def corruption(draw: st.DrawFn, table: pa.Table) -> pa.Table:
    """One random fault applied to ``table``."""
    column = draw(st.sampled_from(table.column_names))
    kind = draw(st.sampled_from(["cells", "drop", "text", "constant", "rename", "duplicate", "swap", "remove"]))
    n = table.num_rows
    if kind == "cells":
        rows = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=max(1, n // 3)))
        return _set_cells(table, column, rows, draw(st.sampled_from(CELL_VALUES)))
    if kind == "drop":
        return table.drop_columns([column])
    if kind == "text":
        return table.set_column(table.schema.get_field_index(column), column, pc_text(table.column(column)))
    if kind == "rename":  # onto another column's name: two columns answer to it
        names = [draw(st.sampled_from(table.column_names)) if n == column else n for n in table.column_names]
        return table.rename_columns(names)
    if kind == "constant":
        return _set_cells(table, column, list(range(n)), draw(st.sampled_from(CELL_VALUES)))
    order = np.arange(n)
    i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
    if kind == "duplicate":
        order = np.insert(order, i, order[i])
    elif kind == "swap":
        order[[i, j]] = order[[j, i]]
    else:
        order = order[(order < min(i, j)) | (order > max(i, j))]
    return table.take(pa.array(order))


def pc_text(column: pa.ChunkedArray) -> pa.Array:
    return pa.array([None if v is None else str(v) for v in column.to_pylist()], type=pa.string())


@st.composite
def corrupted_panel(draw: st.DrawFn) -> pa.Table:
    table = BASE
    for _ in range(draw(st.integers(1, 3))):
        names = table.column_names
        if not table.num_rows or not names or len(set(names)) < len(names):  # nothing left to address by name
            break
        table = draw(corruption(table))
    return table


def _assert_promises_kept(path: Path) -> None:
    """A panel that passes holds what the contract promises (read from the loaded dense panel)."""
    panel = load_panel(path, HORIZONS)
    assert not torch.isinf(panel.features).any() and not torch.isinf(panel.targets).any()
    assert not torch.isinf(panel.returns).any() and not torch.isinf(panel.market).any()
    assert (np.diff(panel.dates.astype(np.int64)) > 0).all()
    assert int(panel.present.sum()) == pq.read_metadata(path).num_rows  # every row has its own (date, code)
    assert int(panel.present.sum(1).min()) >= 2


@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(table=corrupted_panel())
def test_a_corrupted_panel_passes_or_is_refused_by_name(table: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "panel.parquet"
    pq.write_table(table, path)
    try:
        report = check_panel(load_panel(path, HORIZONS), CFG)
        report.raise_if_failed(str(path))
    except (DataContractError, InputFileError) as exc:
        assert isinstance(exc, AtftError) and exc.exit_code == 2
        assert str(path) in str(exc)
        return
    _assert_promises_kept(path)


def test_the_uncorrupted_panel_passes(tmp_path: Path) -> None:
    """The control: the base panel passes, so a refusal above is the corruption's doing."""
    path = tmp_path / "panel.parquet"
    pq.write_table(BASE, path)
    assert check_panel(load_panel(path, HORIZONS), CFG).problems == []
