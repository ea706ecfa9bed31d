"""The validation report: metrics are finance.evaluate on the run's rows, objectives PASS/FAIL from its files."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from atft.errors import InputFileError
from atft.metrics.finance import evaluate
from atft.report import build_report, compare, write_report
from factories import BASELINE_NOISE, HORIZONS, SPLIT_DAYS, make_run


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    run = make_run(tmp_path_factory.mktemp("good") / "run")
    return run, write_report(run)


def _outcome(report: dict[str, Any]) -> dict[str, bool]:
    return {o["name"]: o["passed"] for o in report["objectives"]}


def _objective(report: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = (o for o in report["objectives"] if o["name"] == name)
    return found


def _nan_to_none(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in metrics.items()}


@pytest.mark.parametrize("split", ["val", "test"])
@pytest.mark.parametrize("source", ["model", "momentum", "oracle"])
@pytest.mark.parametrize("h", HORIZONS)
def test_report_json_metrics_are_finance_evaluate_on_the_split_rows(
    good: tuple[Path, dict[str, Any]], split: str, source: str, h: int
) -> None:
    run, _ = good
    table = pq.read_table(run / "predictions.parquet")
    rows = table.filter(pc.equal(table.column("split"), split))
    day = rows.column("date").to_numpy().astype(np.int64)  # days since 1970: the same order as trading days
    pred, target, code = (
        rows.column(c).to_numpy(zero_copy_only=False) for c in (f"{source}_{h}d", f"target_{h}d", "code")
    )
    expected = evaluate(day, pred, target, h, stock=code, cost_bps=25.0)
    reported = json.loads((run / "report.json").read_text())["metrics"][split][source][f"{h}d"]
    assert reported == pytest.approx(_nan_to_none(expected), rel=1e-12)
    unfilled = 2 if source in BASELINE_NOISE else 0  # a baseline's first 2 days are NaN
    assert reported["n_days"] == SPLIT_DAYS[split] - h - unfilled  # and the last h days have no label


def test_net_sharpe_is_charged_the_configs_cost(good: tuple[Path, dict[str, Any]]) -> None:
    m = good[1]["metrics"]["test"]["model"]["5d"]
    assert m["sharpe_net"] < m["sharpe"]
    cheaper = make_run(good[0].parent / "cheap", cost_bps=0.0)
    assert build_report(cheaper)["metrics"]["test"]["model"]["5d"]["sharpe_net"] == pytest.approx(m["sharpe"])


def test_fraction_of_oracle_is_model_over_oracle_rank_ic(good: tuple[Path, dict[str, Any]]) -> None:
    report = good[1]
    for split in ("val", "test"):
        for hd in ("1d", "5d"):
            by_source = report["metrics"][split]
            ratio = by_source["model"][hd]["rank_ic"] / by_source["oracle"][hd]["rank_ic"]
            assert report["fraction_of_oracle"][split][hd] == pytest.approx(ratio)
            assert 0.5 < ratio < 1.0  # the model is the oracle plus noise


def test_without_oracle_there_is_no_fraction(tmp_path: Path) -> None:
    report = build_report(make_run(tmp_path / "run", drop_columns=("oracle_1d", "oracle_5d")))
    assert report["fraction_of_oracle"] == {}
    assert "oracle" not in report["metrics"]["test"]


def test_good_run_passes_every_objective(good: tuple[Path, dict[str, Any]]) -> None:
    assert _outcome(good[1]) == {
        "no_nan": True,
        "all_components_received_gradient": True,
        "rank_ic_positive": True,
        "beats_momentum": True,
        "beats_reversal": True,
        "beats_ridge": True,
        "dispersion_ratio": True,
    }
    ranking = _objective(good[1], "rank_ic_positive")
    assert ranking["threshold"] == 2.0
    assert ranking["value"] == good[1]["metrics"]["test"]["model"]["5d"]["rank_ic_t"]


def test_noise_model_fails_rank_ic_and_every_beat(tmp_path: Path) -> None:
    outcome = _outcome(build_report(make_run(tmp_path / "run", model_noise=None)))
    assert [name for name, passed in outcome.items() if not passed] == [
        "rank_ic_positive",
        "beats_momentum",
        "beats_reversal",
        "beats_ridge",
    ]


def test_collapsed_model_fails_dispersion_ratio(tmp_path: Path) -> None:
    report = build_report(make_run(tmp_path / "run", model_scale=1e-4))
    assert [name for name, passed in _outcome(report).items() if not passed] == ["dispersion_ratio"]
    assert _objective(report, "dispersion_ratio")["value"] < 0.02


def test_zero_grad_norm_fails_and_names_the_component(tmp_path: Path) -> None:
    report = build_report(make_run(tmp_path / "run", grad_norms={"encoder": 0.4, "graph": 0.0, "heads": 0.1}))
    objective = _objective(report, "all_components_received_gradient")
    assert (objective["passed"], objective["value"]) == (False, 0.0)
    assert "graph" in objective["detail"] and "encoder" not in objective["detail"]
    assert [name for name, passed in _outcome(report).items() if not passed] == [objective["name"]]


def test_missing_preflight_fails_and_says_so(tmp_path: Path) -> None:
    objective = _objective(
        build_report(make_run(tmp_path / "run", preflight=False)), "all_components_received_gradient"
    )
    assert objective["passed"] is False
    assert math.isnan(objective["value"])
    assert "no preflight record" in objective["detail"]


def test_nan_loss_fails_no_nan_and_names_the_step(tmp_path: Path) -> None:
    objective = _objective(build_report(make_run(tmp_path / "run", nan_loss=True)), "no_nan")
    assert (objective["passed"], objective["value"]) == (False, 2)  # the loss and its pinball term
    assert "train step 20 loss; metrics.jsonl train step 20 pinball" in objective["detail"]


def test_nan_model_prediction_fails_no_nan(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    table = pq.read_table(run / "predictions.parquet")
    model = table.column("model_q90_5d").to_numpy().copy()
    model[[3, 7]] = np.nan
    pq.write_table(
        table.set_column(table.schema.get_field_index("model_q90_5d"), "model_q90_5d", [model]),
        run / "predictions.parquet",
    )
    objective = _objective(build_report(run), "no_nan")
    assert (objective["passed"], objective["value"]) == (False, 2)
    assert "val model_q90_5d (2 rows)" in objective["detail"]


def test_missing_baseline_column_fails_its_beat_with_the_column_named(tmp_path: Path) -> None:
    report = build_report(make_run(tmp_path / "run", drop_columns=("ridge_5d",)))
    objective = _objective(report, "beats_ridge")
    assert objective["passed"] is False
    assert "ridge_5d" in objective["detail"]
    assert _outcome(report)["beats_momentum"] is True


def test_no_test_rows_fails_every_test_objective(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    table = pq.read_table(run / "predictions.parquet")
    pq.write_table(table.filter(pc.equal(table.column("split"), "val")), run / "predictions.parquet")
    report = write_report(run)
    failing = {o["name"]: o["detail"] for o in report["objectives"] if not o["passed"]}
    assert set(failing) == {"rank_ic_positive", "beats_momentum", "beats_reversal", "beats_ridge", "dispersion_ratio"}
    assert all("no test rows" in detail for detail in failing.values())
    assert set(report["plots"]["skipped"]) == {"rank_ic_cumulative.png", "long_short_equity.png"}


def test_inf_prediction_is_not_evaluated_and_fails_loudly(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    table = pq.read_table(run / "predictions.parquet")
    model = table.column("model_5d").to_numpy().copy()
    model[-1] = np.inf
    pq.write_table(
        table.set_column(table.schema.get_field_index("model_5d"), "model_5d", [model]), run / "predictions.parquet"
    )
    report = write_report(run)
    assert report["not_evaluated"] == {"test": {"model_5d": "model_5d holds ±Inf on 1 rows"}}
    assert "5d" not in report["metrics"]["test"]["model"]
    assert "model_5d holds ±Inf" in _objective(report, "rank_ic_positive")["detail"]
    assert not _objective(report, "no_nan")["passed"]


def test_epoch_table_joins_val_and_epoch_records(good: tuple[Path, dict[str, Any]]) -> None:
    epochs = good[1]["epochs"]
    assert [row["epoch"] for row in epochs] == [0, 1, 2]
    assert epochs[2]["rank_ic_5d"] == pytest.approx(0.06)
    assert epochs[2]["train_loss"] == pytest.approx(0.75)
    assert epochs[1]["val_loss"] == pytest.approx(0.85)
    assert [r["step"] for r in good[1]["train_curve"]] == [5, 10, 15, 20, 25, 30]
    assert good[1]["selection"]["best_epoch"] == 2
    assert good[1]["cost"]["device"] == "cpu"


def test_write_report_writes_strict_json_markdown_and_pngs(good: tuple[Path, dict[str, Any]]) -> None:
    run, report = good
    json.loads((run / "report.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    markdown = (run / "report.md").read_text()
    assert markdown.index("## Objectives") < markdown.index("## test, 5d")
    assert "| PASS | rank_ic_positive |" in markdown
    assert "| model |" in markdown and "| ridge |" in markdown
    assert report["plots"] == {
        "written": ["rank_ic_cumulative.png", "long_short_equity.png", "dispersion_ratio.png", "loss.png"],
        "skipped": {},
    }
    for name in report["plots"]["written"]:
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (run / name).stat().st_size > 5000
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


def test_dispersion_plot_is_skipped_without_val_records_and_a_stale_one_removed(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", val_records=False)
    (run / "dispersion_ratio.png").write_bytes(b"stale")
    report = write_report(run)
    assert report["plots"]["skipped"] == {"dispersion_ratio.png": "metrics.jsonl has no val records"}
    assert not (run / "dispersion_ratio.png").exists()
    assert "skipped dispersion_ratio.png" in (run / "report.md").read_text()


def test_plots_are_drawn_despite_a_nan_loss(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", nan_loss=True)
    report = write_report(run)
    assert "loss.png" in report["plots"]["written"]
    assert (run / "loss.png").stat().st_size > 5000


def test_compare_gives_b_minus_a(good: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    run_b = make_run(tmp_path / "b", model_noise=None)
    rows = {r["metric"]: r for r in compare(good[0], run_b)}
    key = "metrics.test.model.5d.rank_ic"
    a, b = good[1]["metrics"]["test"]["model"]["5d"]["rank_ic"], build_report(run_b)["metrics"]["test"]["model"]["5d"]
    assert (rows[key]["a"], rows[key]["b"]) == (pytest.approx(a), pytest.approx(b["rank_ic"]))
    assert rows[key]["diff"] == pytest.approx(b["rank_ic"] - a)
    assert rows["objectives.no_nan"]["diff"] == 0
    assert {"cost.wall_s", "selection.best_epoch", "fraction_of_oracle.val.1d"} <= rows.keys()


def test_compare_lists_a_metric_of_one_run_only_with_nan(good: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    rows = {r["metric"]: r for r in compare(good[0], make_run(tmp_path / "b", drop_columns=("ridge_1d",)))}
    assert math.isnan(rows["metrics.val.ridge.1d.ic"]["b"]) and math.isnan(rows["metrics.val.ridge.1d.ic"]["diff"])


def test_missing_run_dir_names_it(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=re.escape(f"{tmp_path / 'nope'}: no such run directory")):
        build_report(tmp_path / "nope")


def test_missing_file_is_named(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    (run / "predictions.parquet").unlink()
    with pytest.raises(InputFileError, match=re.escape("predictions.parquet: no such file")):
        build_report(run)


def test_broken_metrics_line_is_named(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"kind": "cost", "wall')
    n_lines = len((run / "metrics.jsonl").read_text().splitlines())
    with pytest.raises(InputFileError, match=re.escape(f"metrics.jsonl:{n_lines}: not valid JSON")):
        build_report(run)


def test_missing_model_column_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=re.escape("missing column(s) model_1d")):
        build_report(make_run(tmp_path / "run", drop_columns=("model_1d",)))
