"""Shared fixtures: a tiny valid panel (as a table and as a file) and the real price data.

The six-stock sample ships in ``tests/data`` so that a plain clone passes its tests. The S&P 500 development
panel is too large to ship: tests that read it carry the marker ``sp500`` (deselected by default; ``pytest -m
sp500``) and find it in ``../shared/data`` beside the clone, or skip saying where they looked.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from atft.io import write_parquet
from factories import make_panel_table

DATA = Path(__file__).resolve().parent / "data"
SP500_PANEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "sp500_daily_2006_2016.parquet"


@pytest.fixture
def panel_table() -> pa.Table:
    return make_panel_table()


@pytest.fixture
def panel_file(tmp_path: Path, panel_table: pa.Table) -> Path:
    path = tmp_path / "panel.parquet"
    write_parquet(panel_table, path)
    return path


@pytest.fixture(scope="session")
def real_prices() -> Path:
    """Daily OHLCV of 6 US stocks, 2013-2023, 2,699 days each (source, licence, sha256: tests/data/README.md)."""
    return DATA / "stocks_daily_6.csv.gz"


@pytest.fixture(scope="session")
def sp500_panel() -> Path:
    """The S&P 500 development panel (491 stocks, 2006-2016, 26 MB): ``../shared/data`` beside the clone.

    Only tests marked ``sp500`` may use it: it is not part of the repository, so without it they skip, naming
    the path they looked at.
    """
    if not SP500_PANEL.is_file():
        pytest.skip(f"S&P 500 dev panel not found at {SP500_PANEL}: these tests need ../shared/data beside the clone")
    return SP500_PANEL


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that reads the S&P 500 panel must carry the ``sp500`` marker, or a default run would need it."""
    for item in items:
        if "sp500_panel" in getattr(item, "fixturenames", ()) and item.get_closest_marker("sp500") is None:
            raise pytest.UsageError(f"{item.nodeid} uses the sp500_panel fixture: mark it @pytest.mark.sp500")
