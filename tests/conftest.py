"""Shared fixtures: a tiny valid panel, as a table and as a file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from atft.io import write_parquet
from factories import make_panel_table


@pytest.fixture
def panel_table() -> pa.Table:
    return make_panel_table()


@pytest.fixture
def panel_file(tmp_path: Path, panel_table: pa.Table) -> Path:
    path = tmp_path / "panel.parquet"
    write_parquet(panel_table, path)
    return path
