"""Protocol integrity: nothing a run decides -- weights, selected epoch, validation scores, baselines fitted on
training or validation days -- depends on the test days' targets. They are read once, by the final evaluation.

The proof is a counterfactual: the same run on a panel whose test-window targets were replaced by noise must
train the same weights bit for bit, log the same records up to the final evaluation, and forecast the test
days identically; only the scores against those targets may differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from atft.config import load_config
from atft.data.panel import read_calendar
from atft.data.splits import pick, walk_forward
from atft.train.job import run_training
from factories import run_records

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "configs" / "debug.yaml"
UNTIL_EVALUATION = ("preflight", "train", "signal", "grad", "val", "epoch", "health", "selection")
WALL_CLOCK = {"time", "wall_s", "stock_days_per_s"}


def _records(run: Path) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k not in WALL_CLOCK} for r in run_records(run) if r["kind"] in UNTIL_EVALUATION
    ]


def _same(a: pa.ChunkedArray, b: pa.ChunkedArray) -> bool:
    """Equal value for value, NaN equal to NaN (the same computation on the same inputs: exact)."""
    x, y = a.to_numpy(zero_copy_only=False), b.to_numpy(zero_copy_only=False)
    return bool(np.array_equal(x, y, equal_nan=x.dtype.kind == "f"))


@pytest.fixture(scope="module")
def panels(tmp_path_factory: pytest.TempPathFactory, debug_panel: Path) -> tuple[Path, Path]:
    clean, cfg = debug_panel, load_config(DEBUG)
    dates = read_calendar(clean)
    test = pick(walk_forward(dates, cfg), cfg.split.fold).test
    table = pq.read_table(clean)
    on_test = pc.is_in(
        table.column("date"), pa.array(dates[test.start : test.stop].astype("datetime64[D]"), pa.date32())
    )
    rng = np.random.default_rng(1)
    for name in [n for n in table.column_names if n.startswith("target_")]:
        noise = pa.array(rng.normal(0, 0.05, table.num_rows).astype(np.float32))
        column = table.column(name)  # a missing label stays missing: which rows are scored is not the leak tested
        poison = pc.and_(on_test, pc.invert(pc.is_nan(column)))
        table = table.set_column(table.schema.get_field_index(name), name, pc.if_else(poison, noise, column))
    poisoned = tmp_path_factory.mktemp("protocol") / "poisoned.parquet"
    pq.write_table(table, poisoned)
    return clean, poisoned


def test_nothing_before_the_final_evaluation_reads_the_test_targets(panels: tuple[Path, Path], tmp_path: Path) -> None:
    clean, poisoned = panels
    cfg = load_config(DEBUG, ["train.epochs=2"])
    for name, panel in (("clean", clean), ("poisoned", poisoned)):
        run_training(cfg, tmp_path / name, panel, progress=False)
    a, b = tmp_path / "clean", tmp_path / "poisoned"
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert _records(a) == _records(b)
    pa_, pb = (pq.read_table(r / "predictions.parquet") for r in (a, b))
    forecasts = [c for c in pa_.column_names if not c.startswith("target_")]
    changed = [c for c in forecasts if not _same(pa_.column(c), pb.column(c))]
    assert not changed, f"forecasts that read a test target: {changed}"
    test_rows = pc.equal(pa_.column("split"), "test")
    assert not pa_.filter(test_rows).column("target_5d").equals(pb.filter(test_rows).column("target_5d"))
    val_rows = pc.equal(pa_.column("split"), "val")
    assert all(_same(pa_.filter(val_rows).column(c), pb.filter(val_rows).column(c)) for c in pa_.column_names)
    report_a, report_b = (json.loads((r / "report.json").read_text()) for r in (a, b))
    assert report_a["metrics"]["val"] == report_b["metrics"]["val"]
    assert report_a["metrics"]["test"] != report_b["metrics"]["test"], "the counterfactual changed the test scores"
