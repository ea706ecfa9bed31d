"""Shared fixtures: a tiny valid panel (as a table and as a file), the debug config's synthetic market, and the
real price data.

The six-stock sample ships in ``tests/data`` so that a plain clone passes its tests. The S&P 500 development
panel is too large to ship: tests that read it carry the marker ``sp500`` (deselected by default; ``pytest -m
sp500``) and find it in ``../shared/data`` beside the clone, or skip saying where they looked.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from atft.config import load_config
from atft.data.sources import write_synthetic
from atft.runs.files import write_parquet
from factories import make_panel_table

DATA = Path(__file__).resolve().parent / "data"
DEBUG_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "debug.yaml"
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
def debug_market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(feature panel, raw prices) of the debug config's synthetic market: the panel every tiny training run
    reads, generated once a session. Read-only: a test that needs a changed panel writes its own copy."""
    folder = tmp_path_factory.mktemp("debug-market")
    panel, prices = folder / "panel.parquet", folder / "prices.parquet"
    write_synthetic(load_config(DEBUG_CONFIG), panel, prices)
    return panel, prices


@pytest.fixture(scope="session")
def debug_panel(debug_market: tuple[Path, Path]) -> Path:
    """The feature panel of :func:`debug_market`."""
    return debug_market[0]


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
