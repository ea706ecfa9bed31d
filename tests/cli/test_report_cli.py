"""``atft report``: exit codes through the real entry point (subprocess), output formats through CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from processes import run_cli
from typer.testing import CliRunner

from atft_cli.main import app
from factories import make_run


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("cli") / "good")


def test_check_exits_0_on_a_good_run_and_writes_the_report(good: Path) -> None:
    result = run_cli("report", good, "--check")
    assert result.returncode == 0, result.stderr
    assert "rank_ic_positive" in result.stdout and "FAIL" not in result.stdout
    assert "test metrics at 5d" in result.stdout
    assert (good / "report.md").is_file() and (good / "report.json").is_file()
    assert "hint:" in result.stderr and "hint:" not in result.stdout


def test_check_exits_1_on_a_bad_run_naming_the_failed_objectives(tmp_path: Path) -> None:
    result = run_cli("report", make_run(tmp_path / "bad", model_noise=None, preflight=False), "--check")
    assert result.returncode == 1
    assert "all_components_received_gradient, rank_ic_positive, beats_momentum" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_exits_1_on_a_dead_input_naming_no_dead_inputs(tmp_path: Path) -> None:
    dead = {"name": "dead_input", "step": 20, "feature": "ret_1d", "message": "mean selection weight 0"}
    result = run_cli("report", make_run(tmp_path / "dead", health_events=[dead]), "--check")
    assert result.returncode == 1
    assert "1 objective(s) FAIL: no_dead_inputs (see" in result.stderr
    assert "health events: dead_input x1" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_run_stopped_before_evaluation_is_reported_with_a_hint(tmp_path: Path) -> None:
    run = make_run(tmp_path / "stopped", stopped_at=7, predictions=False)
    result = CliRunner().invoke(app, ["report", str(run), "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["test_5d"] == []
    assert {o["detail"] for o in data["objectives"] if o["name"].startswith("beats_")} == {
        "no predictions.parquet: the run stopped before evaluation"
    }
    assert "the run stopped before evaluation; no test metrics" in result.stderr
    assert (run / "report.md").is_file()


def test_missing_run_dir_exits_2_naming_it_without_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-run"
    result = run_cli("report", missing)
    assert result.returncode == 2
    assert f"{missing}: no such run directory" in result.stderr.replace("\n", "")
    assert "Traceback" not in result.stderr


def test_without_check_a_failing_run_exits_0_and_hints(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(make_run(tmp_path / "bad", model_noise=None))])
    assert result.exit_code == 0, result.output
    assert "--check makes that exit 1" in result.stderr
    assert "FAIL" in result.stdout


def test_json_output_is_one_strict_document(good: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(good), "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert [o["name"] for o in data["objectives"]][:2] == ["no_nan", "all_components_received_gradient"]
    assert {row["source"] for row in data["test_5d"]} == {
        "model",
        "momentum",
        "reversal",
        "ridge",
        "lightgbm",
        "oracle",
    }


def test_two_runs_print_b_minus_a(good: Path, tmp_path: Path) -> None:
    run_b = make_run(tmp_path / "b", model_scale=2.0)
    result = CliRunner().invoke(app, ["report", str(good), str(run_b), "-o", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["metric"]: r for r in json.loads(result.stdout)}
    row = rows["metrics.test.model.5d.dispersion_ratio"]
    assert row["b"] == pytest.approx(2 * row["a"])  # the same rows, predictions twice as wide
    assert row["diff"] == pytest.approx(row["b"] - row["a"])
    assert not (run_b / "report.json").exists()  # comparing writes nothing


def test_check_with_two_runs_is_a_usage_error(good: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(good), str(good), "--check"])
    assert result.exit_code == 2
    assert "--check judges one run" in result.output
