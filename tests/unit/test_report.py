"""The validation report: metrics are finance.evaluate on the run's rows, objectives PASS/FAIL from its files."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from atft.errors import InputFileError
from atft.metrics.finance import evaluate
from atft.report.build import build_report, write_report
from atft.report.compare import compare
from atft.report.plots import _gradient_figure
from atft.telemetry.events import read_events, records
from factories import BASELINE_NOISE, HORIZONS, SPLIT_DAYS, make_run, write_events


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
        "no_vanishing_gradient": True,
        "no_exploding_gradient": True,
        "no_collapse": True,
        "learning_signal": True,
        "no_dead_inputs": True,
        "rank_ic_positive": True,
        "beats_momentum": True,
        "beats_reversal": True,
        "beats_ridge": True,
        "beats_lightgbm": True,
        "dispersion_ratio": True,
        "oracle_fraction": True,
    }
    ranking = _objective(good[1], "rank_ic_positive")
    assert ranking["threshold"] == 2.0
    assert ranking["value"] == good[1]["metrics"]["test"]["model"]["5d"]["rank_ic_t"]


@pytest.mark.parametrize("least", [0.3, 0.99])
def test_oracle_fraction_is_judged_when_a_threshold_is_set(tmp_path: Path, least: float) -> None:
    report = build_report(make_run(tmp_path / "run", sets=[f"report.min_oracle_fraction={least}"]))
    objective = _objective(report, "oracle_fraction")
    fraction = report["fraction_of_oracle"]["test"]["5d"]
    assert (objective["threshold"], objective["value"]) == (least, fraction)
    assert objective["passed"] is (fraction >= least) is (least == 0.3)
    assert [name for name, passed in _outcome(report).items() if not passed] == (
        [] if least == 0.3 else ["oracle_fraction"]
    )


def test_oracle_fraction_is_not_judged_on_a_panel_without_an_oracle(tmp_path: Path) -> None:
    report = build_report(make_run(tmp_path / "run", drop_columns=("oracle_1d", "oracle_5d")))
    assert "oracle_fraction" not in _outcome(report) and all(_outcome(report).values())


def test_oracle_fraction_fails_when_the_oracle_cannot_be_evaluated(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    table = pq.read_table(run / "predictions.parquet")
    oracle = table.column("oracle_5d").to_numpy().copy()
    oracle[np.flatnonzero(table.column("split").to_numpy(zero_copy_only=False) == "test")[:5]] = np.inf
    index = table.schema.get_field_index("oracle_5d")
    pq.write_table(table.set_column(index, "oracle_5d", [oracle]), run / "predictions.parquet")
    objective = _objective(build_report(run), "oracle_fraction")
    assert objective["passed"] is False and "oracle_5d" in objective["detail"] and "Inf" in objective["detail"]


def test_noise_model_fails_rank_ic_and_every_beat(tmp_path: Path) -> None:
    outcome = _outcome(build_report(make_run(tmp_path / "run", model_noise=None)))
    assert [name for name, passed in outcome.items() if not passed] == [
        "rank_ic_positive",
        "beats_momentum",
        "beats_reversal",
        "beats_ridge",
        "beats_lightgbm",
        "oracle_fraction",
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
    assert "train step 20 loss; events.jsonl train step 20 pinball" in objective["detail"]


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
    assert set(failing) == {
        "rank_ic_positive",
        "beats_momentum",
        "beats_reversal",
        "beats_ridge",
        "beats_lightgbm",
        "dispersion_ratio",
    }
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
        "written": [
            "rank_ic_cumulative.png",
            "long_short_equity.png",
            "dispersion_ratio.png",
            "loss.png",
            "gradient_norms.png",
        ],
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
    assert report["plots"]["skipped"] == {"dispersion_ratio.png": "events.jsonl has no val records"}
    assert not (run / "dispersion_ratio.png").exists()
    assert "skipped dispersion_ratio.png" in (run / "report.md").read_text()


def test_plots_are_drawn_despite_a_nan_loss(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", nan_loss=True, predictions=False)  # no prediction plots: faster
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
    assert {"gradient_flow.components.encoder.median", "training_signal.horizons.5d.t"} <= rows.keys()


def test_compare_lists_a_metric_of_one_run_only_with_nan(good: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    rows = {r["metric"]: r for r in compare(good[0], make_run(tmp_path / "b", drop_columns=("ridge_1d",)))}
    assert math.isnan(rows["metrics.val.ridge.1d.ic"]["b"]) and math.isnan(rows["metrics.val.ridge.1d.ic"]["diff"])


def test_missing_run_dir_names_it(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=re.escape(f"{tmp_path / 'nope'}: no such run directory")):
        build_report(tmp_path / "nope")


@pytest.mark.parametrize("name", ["config.yaml", "events.jsonl"])
def test_missing_config_or_metrics_is_named(tmp_path: Path, name: str) -> None:
    run = make_run(tmp_path / "run", predictions=False)
    (run / name).unlink()
    with pytest.raises(InputFileError, match=re.escape(f"{name}: no such file")):
        build_report(run)


def test_broken_event_line_is_named(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    with open(run / "events.jsonl", "a") as fh:
        fh.write('{"kind": "metric", "wall\n{"kind": "metric", "step": 40}\n')
    n_lines = len((run / "events.jsonl").read_text().splitlines())
    with pytest.raises(InputFileError, match=re.escape(f"events.jsonl:{n_lines - 1}: telemetry event is not JSON")):
        build_report(run)


def test_a_cut_off_last_event_line_is_left_out_and_reported(tmp_path: Path) -> None:
    """A kill while the run appends an event leaves half a line at the end; the rest of the run still counts."""
    run = make_run(tmp_path / "run")
    whole = build_report(run)
    with open(run / "events.jsonl", "a") as fh:
        fh.write('{"kind": "metric", "wall')
    report = build_report(run)
    assert report["events_torn_line"] == len((run / "events.jsonl").read_text().splitlines())
    assert whole["events_torn_line"] is None and report["epochs"] == whole["epochs"]


def test_missing_model_column_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=re.escape("missing column(s) model_1d")):
        build_report(make_run(tmp_path / "run", drop_columns=("model_1d",)))


# --- health: what the training monitors measured (grad, signal, health records; epoch/cost counters) ---------

HEALTH = ["no_vanishing_gradient", "no_exploding_gradient", "no_collapse", "learning_signal", "no_dead_inputs"]
NO_PREDICTIONS = "no predictions.parquet: the run stopped before evaluation"
SIGNAL_NOT_JUDGED = (
    "learning signal was not judged: no epoch record has an epoch-end verdict (epoch_train_rank_ic_t_<h>d; an epoch "
    "needs health.signal.window = 10 training days with a RankIC); 0 weak_learning_signal warning(s), "
    "0 learning_signal_unconfirmed warning(s), 0 no_learning_signal event(s) in the run"
)


def _failing(report: dict[str, Any]) -> dict[str, str]:
    return {o["name"]: o["detail"] for o in report["objectives"] if not o["passed"]}


def _records(run: Path) -> list[dict[str, Any]]:
    return records(read_events(run / "events.jsonl"))


def _write_records(run: Path, written: list[dict[str, Any]]) -> None:
    (run / "events.jsonl").unlink()
    write_events(run / "events.jsonl", written)


def test_healthy_run_passes_the_health_objectives_saying_what_was_measured(good: tuple[Path, dict[str, Any]]) -> None:
    details = {o["name"]: o["detail"] for o in good[1]["objectives"] if o["name"] in HEALTH}
    assert details == {
        "no_vanishing_gradient": "7 grad records (steps 1..30), no vanishing_gradient event",
        "no_exploding_gradient": "7 grad records (steps 1..30), no exploding_gradient event",
        "no_collapse": "no predictions_collapsed event in the degeneracy checks (1d: 6, 5d: 6); "
        "0 degeneracy_reset event(s)",
        "learning_signal": "epoch-end training RankIC t at epoch 2 (step 30): 1d 4.1, 5d 4.5 (z = 2); "
        "0 weak_learning_signal warning(s), 0 learning_signal_unconfirmed warning(s), 0 no_learning_signal event(s) "
        "in the run",
        "no_dead_inputs": "no dead_input event; inputs judged at 3 signal records",
    }
    assert good[1]["health_events"] == {"counts": {}, "counters": {}, "events": []}


def _event(name: str, step: int, **where: Any) -> dict[str, Any]:
    return {"name": name, "step": step, **where}


INJECTED = {
    "vanishing": (
        [
            _event("vanishing_gradient", 5, component="graph", message="gradient L2 norm 0 < 1e-07"),
            _event("vanishing_gradient", 10, component="graph"),
        ],
        "no_vanishing_gradient",
        2,
        "2 vanishing_gradient event(s) in graph (steps 5, 10); first at step 5: gradient L2 norm 0 < 1e-07",
    ),
    "exploding": (
        [_event("exploding_gradient", 15, component="heads", message="gradient L2 norm inf > 1e4")],
        "no_exploding_gradient",
        1,
        "1 exploding_gradient event(s) in heads (step 15); first at step 15: gradient L2 norm inf > 1e4",
    ),
    "collapse": (
        [
            _event("predictions_collapsed", 15, horizon=5),
            _event("degeneracy_reset", 15, horizon=5),
            _event("predictions_collapsed", 25, horizon=5),
        ],
        "no_collapse",
        2,
        "predictions collapsed at 5d (steps 15, 25); 1 degeneracy_reset event(s)",
    ),
    "no-signal": (  # the rolling window's recovery does not clear the epoch verdict
        [_event("no_learning_signal", 10, horizon=5), _event("learning_signal_recovered", 20, horizon=5)],
        "learning_signal",
        1,
        "no learning signal over the training days of epoch 2 (step 30): 5d t = 0.5 (z = 2); "
        "0 weak_learning_signal warning(s), 0 learning_signal_unconfirmed warning(s), 1 no_learning_signal event(s) "
        "in the run",
    ),
    "dead-input": (
        [_event("dead_input", 20, feature="ret_1d", message="mean selection weight 0")],
        "no_dead_inputs",
        1,
        "dead input(s): ret_1d (step 20: mean selection weight 0)",
    ),
    "non-finite": (
        [_event("non_finite", 7, value=math.nan, message="first non-finite value: loss (nan)")],
        "no_nan",
        1,
        "non-finite: events.jsonl health step 7 non_finite: first non-finite value: loss (nan)",
    ),
}


@pytest.mark.parametrize(("events", "name", "value", "detail"), INJECTED.values(), ids=INJECTED.keys())
def test_an_injected_health_event_fails_exactly_its_objective(
    tmp_path: Path, events: list[dict[str, Any]], name: str, value: int, detail: str
) -> None:
    report = build_report(make_run(tmp_path / "run", health_events=events))
    assert _failing(report) == {name: detail}
    assert _objective(report, name)["value"] == value
    assert sum(report["health_events"]["counts"].values()) == len(events)


def test_a_learning_signal_confirmed_by_a_later_epoch_passes(tmp_path: Path) -> None:
    events = [{"name": "no_learning_signal", "step": 10, "horizon": 5}]
    events.append({"name": "learning_signal_confirmed", "step": 20, "horizon": 5, "severity": "info"})
    objective = _objective(build_report(make_run(tmp_path / "run", health_events=events)), "learning_signal")
    assert (objective["passed"], objective["value"]) == (True, 0)
    assert objective["detail"].endswith(
        "0 learning_signal_unconfirmed warning(s), 1 no_learning_signal event(s) in the run"
    )


def test_weak_learning_signal_warnings_are_counted_but_fail_nothing(tmp_path: Path) -> None:
    events = [{"name": "weak_learning_signal", "step": s, "horizon": 20 // s, "severity": "warning"} for s in (5, 10)]
    report = build_report(make_run(tmp_path / "run", health_events=events))
    assert _failing(report) == {}
    objective = _objective(report, "learning_signal")
    assert (
        "2 weak_learning_signal warning(s), 0 learning_signal_unconfirmed warning(s), 0 no_learning"
        in objective["detail"]
    )


def test_an_unconfirmed_learning_signal_at_the_last_epoch_passes_naming_it(tmp_path: Path) -> None:
    """The monitor's warning for a horizon without the power to be judged alone fails nothing; a critical beside it
    in the same epoch still fails the objective, naming only the critical horizon."""
    unconfirmed = {"name": "learning_signal_unconfirmed", "step": 30, "horizon": 5, "severity": "warning"}
    objective = _objective(build_report(make_run(tmp_path / "ok", health_events=[unconfirmed])), "learning_signal")
    assert (objective["passed"], objective["value"]) == (True, 0)
    assert objective["detail"].startswith(
        "epoch-end training RankIC t at epoch 2 (step 30): 1d 4.1, 5d 0.5 (unconfirmed)"
    )
    assert "1 learning_signal_unconfirmed warning(s), 0 no_learning_signal event(s)" in objective["detail"]
    critical = {"name": "no_learning_signal", "step": 30, "horizon": 1, "severity": "critical"}
    report = build_report(make_run(tmp_path / "bad", health_events=[unconfirmed, critical]))
    objective = _objective(report, "learning_signal")
    assert (objective["passed"], objective["value"]) == (False, 1)
    assert "of epoch 2 (step 30): 1d t = 0.5 (z = 2)" in objective["detail"]


def test_an_event_counted_by_the_loop_but_missing_from_the_records_still_fails(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", health_events=[{"name": "dead_input", "step": 12, "feature": "ret_1d"}])
    _write_records(run, [r for r in _records(run) if r["kind"] != "health"])
    objective = _objective(build_report(run), "no_dead_inputs")
    assert (objective["passed"], objective["value"]) == (False, 1)
    assert "the events/dead_input counter says 1, events.jsonl holds 0 dead_input records" in objective["detail"]


def test_without_grad_records_gradient_flow_was_not_measured(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", grad_records=False, predictions=False)
    (run / "gradient_norms.png").write_bytes(b"stale")
    report = write_report(run)
    for name in ("no_vanishing_gradient", "no_exploding_gradient"):
        objective = _objective(report, name)
        assert objective["passed"] is False and math.isnan(objective["value"])
        assert objective["detail"] == "gradient flow was not measured: events.jsonl has no grad records"
    assert report["gradient_flow"] == {"components": {}, "activations": {}}
    assert report["plots"]["skipped"]["gradient_norms.png"] == "events.jsonl has no grad records"
    assert not (run / "gradient_norms.png").exists()


def test_without_signal_records_learning_signal_and_dead_inputs_were_not_measured(tmp_path: Path) -> None:
    report = build_report(make_run(tmp_path / "run", signal_records=False))
    assert _failing(report) == {
        "learning_signal": SIGNAL_NOT_JUDGED,
        "no_dead_inputs": "dead inputs were not measured: no signal record after 20 training days",
    }
    assert _objective(report, "no_collapse")["passed"]  # the epoch records carry the degeneracy counters too
    assert report["training_signal"] is None


def test_learning_signal_of_a_run_stopped_before_its_first_epoch_end_was_not_judged(tmp_path: Path) -> None:
    objective = _objective(build_report(make_run(tmp_path / "run", stopped_at=8, predictions=False)), "learning_signal")
    assert objective["passed"] is False and math.isnan(objective["value"])
    assert objective["detail"] == SIGNAL_NOT_JUDGED


def test_learning_signal_is_the_last_epoch_verdict_and_names_the_failing_horizons(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", health_events=[_event("no_learning_signal", 30, horizon=1)])
    records = _records(run)
    last = next(r for r in reversed(records) if r["kind"] == "epoch")
    last["epoch_train_rank_ic_t_5d"] = 1.9  # under z = 2
    del last["epoch_train_rank_ic_1d"], last["epoch_train_rank_ic_t_1d"]  # too few days at 1d: no verdict
    _write_records(run, records)
    objective = _objective(build_report(run), "learning_signal")
    assert (objective["passed"], objective["value"]) == (False, 2)
    assert objective["detail"].startswith(
        "no learning signal over the training days of epoch 2 (step 30): 1d no verdict, 5d t = 1.9 (z = 2)"
    )


def test_no_collapse_fails_when_the_guard_never_checked(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    records = _records(run)
    for r in records:
        if "degeneracy_checks_5d" in r:
            r["degeneracy_checks_5d"] = 0
    _write_records(run, records)
    objective = _objective(build_report(run), "no_collapse")
    assert objective["passed"] is False
    assert objective["detail"].startswith("collapse was not measured: the degeneracy guard made no check at 5d")


def test_a_run_stopped_before_evaluation_fails_every_prediction_objective(tmp_path: Path) -> None:
    nan = {"name": "non_finite", "step": 7, "value": math.nan, "message": "first non-finite value: loss (nan)"}
    run = make_run(tmp_path / "run", stopped_at=7, predictions=False, health_events=[nan])
    report = write_report(run)
    assert report["evaluated"] is False
    assert (report["metrics"], report["not_evaluated"], report["fraction_of_oracle"]) == ({}, {}, {})
    failing = _failing(report)
    prediction_based = ["rank_ic_positive", *(f"beats_{b}" for b in ("momentum", "reversal", "ridge", "lightgbm"))]
    prediction_based.append("dispersion_ratio")
    assert {n: failing[n] for n in prediction_based} == dict.fromkeys(prediction_based, NO_PREDICTIONS)
    assert failing["no_nan"] == f"non-finite: events.jsonl health step 7 non_finite: {nan['message']}; {NO_PREDICTIONS}"
    # the health objectives are judged from the records the run left: gradients were measured at steps 1 and 5
    assert _outcome(report)["no_vanishing_gradient"] and _outcome(report)["no_exploding_gradient"]
    assert report["plots"]["skipped"]["rank_ic_cumulative.png"] == NO_PREDICTIONS
    assert "gradient_norms.png" in report["plots"]["written"]
    assert NO_PREDICTIONS.capitalize() in (run / "report.md").read_text()
    json.loads((run / "report.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))


def test_gradient_flow_is_first_median_last_of_each_series(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", predictions=False)
    records = _records(run)
    grads = [r for r in records if r["kind"] == "grad"]
    grads[3]["grad_norm/encoder"] = math.nan  # step 15: a measurement, but not a finite one
    _write_records(run, records)
    flow = build_report(run)["gradient_flow"]
    encoder = [r["grad_norm/encoder"] for r in grads]
    assert flow["components"]["encoder"] == {
        "first": encoder[0],
        "median": statistics.median(v for v in encoder if not math.isnan(v)),
        "last": encoder[-1],
        "n": 7,
        "non_finite": 1,
        "first_step": 1,
        "last_step": 30,
    }
    projected = [r["act_grad/projected"] for r in grads]
    assert flow["activations"]["projected"]["median"] == statistics.median(projected) == 0.15  # step 15
    assert set(flow["components"]) == {"encoder", "graph", "heads"}


def test_resets_per_epoch_are_differences_of_the_cumulative_counters(tmp_path: Path) -> None:
    resets = [(5, 5), (5, 15), (5, 18), (1, 25)]  # (horizon, step)
    events = [{"name": "degeneracy_reset", "step": s, "horizon": h, "value": 0.01} for h, s in resets]
    report = build_report(make_run(tmp_path / "run", health_events=events, predictions=False))
    assert [{k: r[k] for k in ("epoch", "1d", "5d")} for r in report["resets_per_epoch"]] == [
        {"epoch": 0, "1d": 0, "5d": 1},
        {"epoch": 1, "1d": 0, "5d": 2},
        {"epoch": 2, "1d": 1, "5d": 0},
    ]
    health = report["health_events"]
    assert health["counts"] == health["counters"] == {"degeneracy_reset": 4}
    assert [(e["step"], e["horizon"], e["value"]) for e in health["events"]] == [(s, h, 0.01) for h, s in resets]


def test_training_signal_is_the_last_signal_record(good: tuple[Path, dict[str, Any]]) -> None:
    last = [r for r in _records(good[0]) if r["kind"] == "signal"][-1]
    assert good[1]["training_signal"] == {
        "step": 30,
        "epoch": 2,
        "horizons": {
            f"{h}d": {"rank_ic": last[f"train_rank_ic_{h}d"], "t": last[f"train_rank_ic_t_{h}d"]} for h in HORIZONS
        },
    }
    markdown = (good[0] / "report.md").read_text()
    assert "## Gradient flow" in markdown and "| grad_norm/encoder |" in markdown
    assert "## Training signal (step 30)" in markdown


def test_gradient_norms_plot_is_log_scaled_and_leaves_out_non_positive_norms() -> None:
    grads = [
        {"kind": "grad", "step": 1, "grad_norm/encoder": 0.0, "grad_norm/heads": 2.0},
        {"kind": "grad", "step": 2, "grad_norm/encoder": 1e-3, "grad_norm/heads": math.inf},
        {"kind": "grad", "step": 3, "grad_norm/encoder": 1e-2, "grad_norm/heads": 3.0},
    ]
    figure = _gradient_figure(grads)
    assert not isinstance(figure, str)
    (ax,) = figure.axes
    assert ax.get_yscale() == "log"
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines}
    assert lines == {"encoder": ([2, 3], [1e-3, 1e-2]), "heads": ([1, 3], [2.0, 3.0])}
    assert _gradient_figure([{**g, "grad_norm/encoder": 0.0, "grad_norm/heads": -1.0} for g in grads]) == (
        "no grad record has a positive finite grad_norm/<component>"
    )
