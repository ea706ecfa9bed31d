"""The S&P 500 development panel through the real data layer: build, contract, anomalies and the folds.

Marked ``sp500``: the panel lives in ``../shared/data`` beside the clone (26 MB, MIT), not in the
repository; without it these tests skip, naming where they looked. ``make test-sp500`` runs them (CI does).
Every expectation is computed here from the raw file, independently of the code under test.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from atft.config import Config, load_config
from atft.data.contract import check_panel
from atft.data.panel import DensePanel, load_panel
from atft.data.sources import build_from_prices
from atft.data.splits import walk_forward

pytestmark = pytest.mark.sp500

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(ROOT / "configs" / "sp500.yaml")


@pytest.fixture(scope="module")
def raw(sp500_panel: Path) -> dict[str, np.ndarray]:
    """Dense [date, symbol] close and volume of the raw file (NaN where a stock has no row)."""
    table = pq.read_table(sp500_panel, columns=["date", "symbol", "close", "volume"])
    dates, day = np.unique(table.column("date").to_numpy(), return_inverse=True)
    symbols, stock = np.unique(table.column("symbol").to_numpy(zero_copy_only=False), return_inverse=True)
    close = np.full((len(dates), len(symbols)), np.nan)
    volume = np.full_like(close, np.nan)
    close[day, stock] = table.column("close").to_numpy()
    volume[day, stock] = table.column("volume").to_numpy()
    return {"dates": dates, "symbols": symbols, "close": close, "volume": volume}


@pytest.fixture(scope="module")
def built(
    sp500_panel: Path, cfg: Config, tmp_path_factory: pytest.TempPathFactory, caplog_module: list[str]
) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("sp500") / "panel.parquet"
    build_from_prices(cfg, sp500_panel, out)
    return out, caplog_module


@pytest.fixture(scope="module")
def caplog_module() -> list[str]:
    """The builder's warnings (module-scoped: caplog is per test), captured from the ``atft`` loggers."""
    import logging

    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Keep(level=logging.WARNING)
    logger = logging.getLogger("atft")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


@pytest.fixture(scope="module")
def panel(built: tuple[Path, list[str]], cfg: Config) -> DensePanel:
    return load_panel(built[0], cfg.data.horizons)


def test_the_panel_holds_every_stock_and_day_of_the_file(panel: DensePanel, raw: dict[str, np.ndarray]) -> None:
    codes = list(panel.codes)
    assert sorted(codes) == sorted(raw["symbols"].tolist())
    assert np.array_equal(np.asarray(panel.dates, dtype="datetime64[D]"), raw["dates"].astype("datetime64[D]"))
    present = panel.present.numpy()
    order = [codes.index(s) for s in raw["symbols"]]
    assert np.array_equal(present[:, order], np.isfinite(raw["close"]))


def test_the_contract_passes_on_real_prices(panel: DensePanel, cfg: Config) -> None:
    report = check_panel(panel, cfg)
    assert report.problems == []
    assert (report.n_days, report.n_stocks) == (len(panel.dates), len(panel.codes))
    assert any("move(s) beyond" in note for note in report.notes)  # survived, and said


def test_anomaly_counts_match_the_raw_file(built: tuple[Path, list[str]], raw: dict[str, np.ndarray]) -> None:
    """The counts the builder names equal a plain numpy count over the raw prices (moves between consecutive
    rows of a stock, as the builder's returns span a gap)."""
    close, volume = raw["close"], raw["volume"]
    moves = 0
    for k in range(close.shape[1]):
        column = close[:, k][np.isfinite(close[:, k])]
        moves += int((np.abs(column[1:] / column[:-1] - 1) > 0.5).sum())
    zero_volume = int((volume == 0).sum())
    text = " | ".join(built[1])
    found_moves = re.search(r"(\d+) move\(s\) beyond", text)
    found_zero = re.search(r"(\d+) row\(s\) with zero volume", text)
    assert found_moves is not None and int(found_moves.group(1)) == moves, text
    assert found_zero is not None and int(found_zero.group(1)) == zero_volume, text
    assert moves > 0 and zero_volume > 0  # the file's documented caveats are there to be reported


def test_the_validation_folds_are_the_years_2010_to_2016(panel: DensePanel, cfg: Config) -> None:
    folds = walk_forward(panel.dates, cfg, calendar=str(panel.source))
    dates = np.asarray(panel.dates, dtype="datetime64[D]")
    years = [int(str(dates[f.test.start])[:4]) for f in folds]
    assert years == list(range(2010, 2017))
    for fold in folds:
        test = dates[fold.test.start : fold.test.stop]
        assert {str(d)[:4] for d in test} == {str(test[0])[:4]}  # a test window is one calendar year
        assert fold.train.start == 0  # expanding: all history before the fold
        assert fold.train.stop <= fold.val.start and fold.val.stop <= fold.test.start
        # purge: no training label (up to the longest horizon ahead) reaches into the validation days
        assert fold.train.stop - 1 + max(cfg.data.horizons) < fold.val.start
