"""Each contract rule fires on a panel with exactly that fault, and a clean panel passes."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from atft.config import load_config
from atft.data.contract import check_panel
from atft.data.panel import load_panel
from atft.errors import DataContractError
from atft.runs.files import write_parquet
from factories import HORIZONS, make_panel_table

CFG = load_config(None, ["data.horizons=[1, 5]", "data.min_stocks_per_day=10"])


def _check(table: pa.Table, tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "p.parquet"
    write_parquet(table, path)
    return check_panel(load_panel(path, HORIZONS), CFG)


def _replace(table: pa.Table, name: str, values: np.ndarray) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, pa.array(values))


def test_clean_panel_passes_and_reports_statistics(tmp_path: Path, panel_table: pa.Table) -> None:
    report = _check(panel_table, tmp_path)
    assert report.problems == []
    assert set(report.dead_date_fraction) == {"f0", "f1", "f2", "f3"}
    assert report.dead_date_fraction["f1"] == 0.0
    assert report.zero_label_fraction[1] < 0.01
    assert report.mean_ic["f0"][1] > report.mean_ic["f3"][1]  # f0 carries the weak planted signal


def test_feature_z_scored_per_stock_is_dead(tmp_path: Path, panel_table: pa.Table) -> None:
    """The predecessor's bug: a per-stock z-score of a market-wide series is identical across stocks."""
    dates = panel_table.column("date").to_numpy()
    per_date = {d: v for d, v in zip(np.unique(dates), np.random.default_rng(1).standard_normal(40), strict=True)}
    dead = np.array([per_date[d] for d in dates], dtype=np.float32)
    report = _check(_replace(panel_table, "feat_f2", dead), tmp_path)
    assert any("'feat_f2' is dead" in p and "100% of dates" in p for p in report.problems), report.problems
    with pytest.raises(DataContractError, match="feat_f2"):
        report.raise_if_failed("p.parquet")


def test_feature_equal_to_a_future_return_leaks(tmp_path: Path, panel_table: pa.Table) -> None:
    leak = panel_table.column("target_5d").to_numpy(zero_copy_only=False) * 100 + 0.1
    report = _check(_replace(panel_table, "feat_f3", leak.astype(np.float32)), tmp_path)
    assert any("'feat_f3' leaks the future" in p and "target_5d" in p for p in report.problems), report.problems
    assert not any("feat_f0" in p for p in report.problems)


def test_labels_filled_with_zero_are_caught(tmp_path: Path, panel_table: pa.Table) -> None:
    y = panel_table.column("target_5d").to_numpy(zero_copy_only=False).copy()
    y[np.isnan(y)] = 0.0  # the tail of the panel, where no later price exists
    y[::10] = 0.0  # and some gaps
    report = _check(_replace(panel_table, "target_5d", y), tmp_path)
    assert any("'target_5d'" in p and "exactly 0" in p for p in report.problems), report.problems


def test_zero_labels_only_at_the_tail_are_caught(tmp_path: Path, panel_table: pa.Table) -> None:
    y = panel_table.column("target_1d").to_numpy(zero_copy_only=False).copy()
    y[np.isnan(y)] = 0.0  # 1 date of 40: under the 5% share rule, caught by the tail rule
    report = _check(_replace(panel_table, "target_1d", y), tmp_path)
    assert any("on the last 1 dates are exactly 0" in p for p in report.problems), report.problems


def test_too_few_stocks_per_day(tmp_path: Path) -> None:
    report = _check(make_panel_table(n_stocks=8), tmp_path)
    assert any("too few stocks per day: 40 of 40 days" in p for p in report.problems), report.problems


def test_a_date_with_a_single_stock_is_named(tmp_path: Path, panel_table: pa.Table) -> None:
    """One thin day is within the thin-day allowance, but a lone stock cannot be z-scored across stocks."""
    dates = panel_table.column("date").to_numpy()
    lone_day = np.unique(dates)[7]
    on_day = np.flatnonzero(dates == lone_day)
    keep = np.ones(panel_table.num_rows, dtype=bool)
    keep[on_day[1:]] = False
    report = _check(panel_table.filter(pa.array(keep)), tmp_path)
    code = panel_table.column("code")[int(on_day[0])].as_py()
    assert report.thin_days == 1
    assert report.problems == [
        f"1 date(s) with a single stock, first {lone_day} ({code}); a cross-section needs at least 2 stocks: "
        "a row with a wrong date?"
    ]


def test_infinite_values_are_named_with_their_first_key(tmp_path: Path, panel_table: pa.Table) -> None:
    x = panel_table.column("feat_f1").to_numpy().copy()
    x[[3, 50]] = np.inf
    report = _check(_replace(panel_table, "feat_f1", x), tmp_path)
    first = panel_table.slice(3, 1).to_pylist()[0]
    assert f"column 'feat_f1': 2 infinite value(s), first at ({first['date']}, {first['code']})" in report.problems


def test_mostly_missing_feature(tmp_path: Path, panel_table: pa.Table) -> None:
    x = panel_table.column("feat_f0").to_numpy().copy()
    x[: int(len(x) * 0.7)] = np.nan
    report = _check(_replace(panel_table, "feat_f0", x), tmp_path)
    assert any("'feat_f0' is 70% missing" in p for p in report.problems), report.problems


def test_screening_ic_agrees_with_the_metric_definition(tmp_path: Path, panel_table: pa.Table) -> None:
    """The contract's batched IC is a screen; atft.metrics.finance.daily_ic is the definition. They agree."""
    from atft.metrics.finance import daily_ic

    report = _check(panel_table, tmp_path)
    day = np.unique(panel_table.column("date").to_numpy(), return_inverse=True)[1]
    series = daily_ic(day, panel_table.column("feat_f0").to_numpy(), panel_table.column("target_5d").to_numpy())
    assert report.mean_ic["f0"][5] == pytest.approx(float(np.mean(series.values)), abs=1e-6)
