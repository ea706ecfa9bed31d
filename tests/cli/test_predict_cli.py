"""``atft predict`` as a user runs it after ``atft train``: a real process, real exit codes, real stderr."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from processes import run_cli

from atft.config import load_config
from atft.data.panel import load_panel
from atft.predict import INPUTS_FILE, write_run_inputs

ROOT = Path(__file__).resolve().parents[2]
DEBUG = str(ROOT / "configs" / "debug.yaml")
TOLERANCE = 1e-6  # another process may split a matrix product across threads differently


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(run directory, panel, prices): ``atft data synth`` then ``atft train`` of the debug config."""
    folder = tmp_path_factory.mktemp("predict")
    panel, prices, run = folder / "panel.parquet", folder / "prices.parquet", folder / "run"
    done = run_cli("data", "synth", "--config", DEBUG, "--out", panel, "--prices", prices, "-o", "json")
    assert done.returncode == 0, done.stderr
    done = run_cli("train", "--config", DEBUG, "--data", panel, "--out", run, "--no-progress", "-o", "json")
    assert done.returncode == 0, done.stderr
    if not (run / INPUTS_FILE).exists():  # until atft.train.job writes it (tests/unit/test_predict.py)
        cfg = load_config(DEBUG)
        write_run_inputs(run, load_panel(panel, cfg.data.horizons), cfg)
    return run, panel, prices


def test_latest_date_prints_its_rows_and_writes_them(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run, panel, _ = trained
    out = tmp_path / "forecasts.parquet"
    done = run_cli("predict", run, "--data", panel, "--out", out, "-o", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    written = pq.read_table(out)
    assert len(rows) == written.num_rows > 10
    assert {r["date"] for r in rows} == {"2018-12-28"}  # the panel's last date: no label exists for it
    assert [r["code"] for r in rows] == written.column("code").to_pylist()
    assert [r["model_5d"] for r in rows] == written.column("model_5d").to_pylist()
    assert sorted(r["rank_5d"] for r in rows) == list(range(1, len(rows) + 1))
    assert "forecasts of 2018-12-28 written to" in done.stderr


def test_dates_of_the_test_split_give_trainings_forecasts(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run, panel, _ = trained
    predictions = pq.read_table(run / "predictions.parquet")
    test = predictions.filter(pc.equal(predictions.column("split"), "test"))
    dates = sorted({str(d) for d in test.column("date").to_pylist()})[-3:]
    out = tmp_path / "test.parquet"
    done = run_cli("predict", run, "--data", panel, "--dates", ",".join(dates), "--out", out, "-o", "json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["dates"] == 3 and summary["first_date"] == dates[0] and summary["last_date"] == dates[-1]
    forecast = pq.read_table(out).to_pandas()
    expected = test.to_pandas()
    expected = expected[expected["date"].astype(str).isin(dates)]
    joined = expected.merge(forecast, on=["date", "code"], suffixes=("", "_forecast"))
    assert len(joined) == len(expected) == summary["rows"]
    for column in [c for c in expected.columns if c.startswith("model_")]:
        np.testing.assert_allclose(joined[f"{column}_forecast"], joined[column], rtol=0, atol=TOLERANCE)


def test_prices_are_built_into_the_runs_panel(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run, panel, prices = trained
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert run_cli("predict", run, "--data", panel, "--out", a, "-o", "yaml").returncode == 0
    done = run_cli("predict", run, "--prices", prices, "--out", b)
    assert done.returncode == 0, done.stderr
    assert pq.read_table(a).equals(pq.read_table(b))
    assert "S0001" in done.stdout and "q05" not in done.stdout  # the table: code, median and rank per horizon


def _refused(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in done.stderr, (needle, done.stderr)


def test_refusals_exit_2_name_the_problem_and_write_nothing(
    trained: tuple[Path, Path, Path], tmp_path: Path, real_prices: Path
) -> None:
    run, panel, prices = trained
    out = tmp_path / "out.parquet"
    # six real stocks have no sector, flow or extra columns: the run's inputs cannot be built from them
    _refused(run_cli("predict", run, "--prices", real_prices, "--out", out), "is missing", "feat_")
    _refused(run_cli("predict", run, "--data", panel, "--prices", prices, "--out", out), "at most one")
    _refused(run_cli("predict", run, "--data", panel, "--dates", "2031-01-02", "--out", out), "2031-01-02")
    _refused(run_cli("predict", tmp_path / "nowhere", "--data", panel, "--out", out), "no such run")
    assert not out.exists()
    out.write_bytes(b"keep me")
    _refused(run_cli("predict", run, "--data", panel, "--out", out), "already exists", "--overwrite")
    assert out.read_bytes() == b"keep me"
    done = run_cli("predict", run, "--data", panel, "--out", out, "--overwrite", "-o", "json")
    assert done.returncode == 0, done.stderr
