from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch

from atft.data.panel import load_panel
from atft.errors import DataContractError, InputFileError
from atft.runs.files import write_parquet
from factories import HORIZONS, make_panel_table


def _write(table: pa.Table, tmp_path: Path, name: str = "p.parquet") -> Path:
    path = tmp_path / name
    write_parquet(table, path, row_group_size=100)  # several row groups: exercises streaming
    return path


def test_dense_arrays_hold_every_cell_of_the_table(tmp_path: Path, panel_table: pa.Table) -> None:
    panel = load_panel(_write(panel_table, tmp_path), HORIZONS)
    rows = panel_table.to_pylist()
    day_of = {d: i for i, d in enumerate(panel.dates.astype(object))}
    stock_of = {c: i for i, c in enumerate(panel.codes)}
    assert panel.features.shape == (40, 30, 4)
    assert panel.targets.shape == (40, 30, 2) and panel.oracle is not None
    assert int(panel.present.sum()) == len(rows)
    for row in rows[::7]:
        d, s = day_of[row["date"]], stock_of[row["code"]]
        assert panel.present[d, s]
        assert panel.features[d, s, 2].item() == pytest.approx(row["feat_f2"])
        assert panel.market[d, 1].item() == pytest.approx(row["mkt_vol"])
        assert panel.returns[d, s].item() == pytest.approx(row["return_1d"])
        np.testing.assert_equal(panel.targets[d, s, 1].item(), np.float32(row["target_5d"]))
    absent = ~panel.present
    assert absent.any()
    assert torch.isnan(panel.features[absent]).all() and torch.isnan(panel.targets[absent]).all()
    assert panel.feature_names == ["f0", "f1", "f2", "f3"] and panel.market_feature_names == ["ret", "vol"]
    assert panel.sectors == ["S0", "S1", "S2"] and panel.sector_id[4].item() == 1
    assert panel.markets[panel.market_id[1]] == "PRIME"


def test_a_complete_panel_loads_too(tmp_path: Path) -> None:
    table = make_panel_table(drop=0.0)
    panel = load_panel(_write(table, tmp_path), HORIZONS)
    assert bool(panel.present.all())
    assert panel.features[3, 5, 0].item() == pytest.approx(table.column("feat_f0")[3 * 30 + 5].as_py())


def test_unsorted_rows_are_named(tmp_path: Path, panel_table: pa.Table) -> None:
    shuffled = panel_table.take(pa.array(np.random.default_rng(0).permutation(panel_table.num_rows)))
    with pytest.raises(DataContractError, match="not sorted by"):
        load_panel(_write(shuffled, tmp_path), HORIZONS)


def test_duplicate_key_is_named(tmp_path: Path, panel_table: pa.Table) -> None:
    doubled = pa.concat_tables([panel_table.slice(0, 1), panel_table])
    with pytest.raises(DataContractError, match=r"duplicate key \(date, code\) = \(2021-01-04, C000\)"):
        load_panel(_write(doubled, tmp_path), HORIZONS)


def test_missing_target_names_the_horizons_in_the_file(tmp_path: Path, panel_table: pa.Table) -> None:
    with pytest.raises(
        DataContractError, match=r"'target_10d' is missing for horizon 10; horizons in the file: \[1, 5\]"
    ):
        load_panel(_write(panel_table, tmp_path), [1, 10])


def test_wrong_dtype_and_missing_columns_reported_together(tmp_path: Path, panel_table: pa.Table) -> None:
    table = panel_table.drop_columns(["return_1d"])
    table = table.set_column(table.schema.get_field_index("feat_f1"), "feat_f1", pc.cast(table["feat_f1"], pa.string()))
    with pytest.raises(DataContractError) as info:
        load_panel(_write(table, tmp_path), HORIZONS)
    assert len(info.value.problems) == 2
    assert "'return_1d' is missing" in str(info.value) and "'feat_f1' has type string" in str(info.value)


def test_null_key_is_named(tmp_path: Path, panel_table: pa.Table) -> None:
    codes = panel_table.column("code").to_pylist()
    codes[5] = None
    table = panel_table.set_column(1, "code", pa.array(codes))
    with pytest.raises(DataContractError, match="'code' has 1 null key"):
        load_panel(_write(table, tmp_path), HORIZONS)


def test_market_context_must_be_constant_per_date(tmp_path: Path, panel_table: pa.Table) -> None:
    values = panel_table.column("mkt_ret").to_numpy().copy()
    values[40] += 1.0
    table = panel_table.set_column(panel_table.schema.get_field_index("mkt_ret"), "mkt_ret", pa.array(values))
    with pytest.raises(DataContractError, match=r"'mkt_ret' is market context .* differs across stocks on 2021-01-05"):
        load_panel(_write(table, tmp_path), HORIZONS)


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such panel file"):
        load_panel(tmp_path / "nope.parquet", HORIZONS)
    truncated = tmp_path / "t.parquet"
    write_parquet(make_panel_table(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(InputFileError, match="not a readable Parquet file"):
        load_panel(truncated, HORIZONS)


def test_timestamps_with_a_time_zone_give_the_local_trading_date(tmp_path: Path, panel_table: pa.Table) -> None:
    """Midnight in Tokyo is 15:00 UTC the day before: the date is the exchange's, as the builder reads prices."""
    tokyo = pc.assume_timezone(pc.cast(panel_table.column("date"), pa.timestamp("s")), "Asia/Tokyo")
    zoned = load_panel(_write(panel_table.set_column(0, "date", tokyo), tmp_path, "tz.parquet"), HORIZONS)
    plain = load_panel(_write(panel_table, tmp_path), HORIZONS)
    assert (zoned.dates == plain.dates).all()
    assert torch.equal(zoned.present, plain.present)


def test_files_that_cannot_be_a_panel_are_named(tmp_path: Path, panel_table: pa.Table) -> None:
    with pytest.raises(InputFileError, match="is a directory, not a file"):
        load_panel(tmp_path, HORIZONS)
    with pytest.raises(DataContractError, match="no rows"):
        load_panel(_write(panel_table.slice(0, 0), tmp_path, "empty.parquet"), HORIZONS)
    twice = panel_table.append_column("feat_f0", panel_table.column("feat_f1"))
    with pytest.raises(DataContractError, match="column 'feat_f0' appears twice or more"):
        load_panel(_write(twice, tmp_path, "twice.parquet"), HORIZONS)
    damaged = _write(panel_table, tmp_path, "damaged.parquet")
    data = bytearray(damaged.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 512] = bytes(range(256)) * 2
    damaged.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match="damaged"):
        load_panel(damaged, HORIZONS)
