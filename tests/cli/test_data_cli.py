"""The CLI as a user runs it: a real process, real exit codes, real stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from processes import run_cli

ROOT = Path(__file__).resolve().parents[2]
DEBUG = str(ROOT / "configs" / "debug.yaml")


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "panel.parquet"
    done = run_cli("data", "synth", "--config", DEBUG, "--out", out, "-o", "json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["stocks"] == 48 and summary["days"] == 260 and summary["features"] >= 30
    return out


def test_synth_then_check_passes(panel: Path) -> None:
    done = run_cli("data", "check", panel, "--config", DEBUG, "-o", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) >= 30 and all(r["dead_dates"] < 0.5 for r in rows)
    assert "data contract passed" in done.stderr


def test_splits_prints_the_folds(panel: Path) -> None:
    done = run_cli("data", "splits", panel, "--config", DEBUG, "-o", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["segment"] for r in rows] == ["train", "val", "test"] * 2
    assert rows[-1]["days"] == 30


def test_existing_output_is_refused_without_overwrite(panel: Path) -> None:
    before = panel.stat().st_mtime_ns
    done = run_cli("data", "synth", "--config", DEBUG, "--out", panel)
    assert done.returncode == 2
    assert "already exists" in done.stderr and "--overwrite" in done.stderr
    assert "Traceback" not in done.stderr
    assert panel.stat().st_mtime_ns == before


def test_build_from_real_prices(real_prices: Path, tmp_path: Path) -> None:
    out = tmp_path / "real.parquet"
    done = run_cli("data", "build", "--prices", real_prices, "--out", out, "-o", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stocks"] == 6


def test_bad_config_exits_2_naming_every_key(panel: Path) -> None:
    done = run_cli("data", "check", panel, "--set", "train.lr=-1", "--set", "data.horizon=[1]")
    assert done.returncode == 2
    assert "train.lr = -1" in done.stderr and "data.horizon: unknown key" in done.stderr
    assert "Traceback" not in done.stderr


def test_debug_env_shows_the_traceback(tmp_path: Path) -> None:
    done = run_cli("data", "check", tmp_path / "missing.parquet", env={"ATFT_DEBUG": "1"})
    assert done.returncode == 2
    assert "no such panel file" in done.stderr and "Traceback" in done.stderr


def test_bad_panel_is_named_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    done = run_cli("data", "check", bad)
    assert done.returncode == 2 and str(bad) in done.stderr and "Traceback" not in done.stderr
