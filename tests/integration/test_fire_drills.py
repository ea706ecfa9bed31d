"""Fire drills: each injected failure makes its detector fire within the stated steps, the report marks the
matching objective FAIL, and the run ends as configured. A healthy run raises none of these events."""

from __future__ import annotations

from pathlib import Path

import pytest
from processes import run_train

from atft.config import load_config
from atft.errors import TrainingFailed
from atft.telemetry.events import read_events
from atft.train.job import run_training
from factories import run_records

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "configs" / "debug.yaml"
FAST_GUARDS = ["health.degeneracy.warmup_steps=10", "health.degeneracy.every=5", "health.degeneracy.patience=2"]
# the debug config's bar (z = 1.5) admits a noise t-statistic about one check in seven now that the monitor's
# errors are overlap-correct; at 2.5 a noise horizon passes a check about one in fifty, a healthy one never
FAST_SIGNAL = ["health.signal.warmup_steps=100", "health.signal.window=100", "health.signal.z=2.5"]


def _drill(panel: Path, out: Path, *sets: str) -> tuple[list[dict], dict[str, dict]]:
    """Run the debug config with ``sets``; return the health records and the report's objectives by name."""
    cfg = load_config(DEBUG, ["train.epochs=1", *sets])
    _, report = run_training(cfg, out, panel, progress=False)
    health = [r for r in run_records(out) if r["kind"] == "health"]
    return health, {o["name"]: o for o in report["objectives"]}


def _first(health: list[dict], name: str) -> dict:
    return next(r for r in health if r["name"] == name)


def test_healthy_run_raises_no_health_event(debug_panel: Path, tmp_path: Path) -> None:
    health, objectives = _drill(debug_panel, tmp_path / "healthy", "train.epochs=2")
    assert health == []
    for name in ("no_vanishing_gradient", "no_exploding_gradient", "no_collapse", "no_dead_inputs", "no_nan"):
        assert objectives[name]["passed"], objectives[name]


def test_dead_encoder_fires_vanishing_gradient_at_step_1(debug_panel: Path, tmp_path: Path) -> None:
    health, objectives = _drill(debug_panel, tmp_path / "dead", "faults.dead_encoder=true")
    vanishing = [r for r in health if r["name"] == "vanishing_gradient" and r["step"] == 1]
    assert {r["component"] for r in vanishing} == {
        "market_context",
        "variable_selection",
        "input_projection",
        "temporal_encoder",
    }
    assert not objectives["no_vanishing_gradient"]["passed"]
    assert not objectives["all_components_received_gradient"]["passed"]


def test_dead_encoder_aborts_when_configured(debug_panel: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingFailed, match="step 1: vanishing_gradient in market_context"):
        _drill(debug_panel, tmp_path / "abort", "faults.dead_encoder=true", "health.grad_monitor.action=abort")
    assert (tmp_path / "abort" / "report.json").exists()  # a stopped run still gets its report
    events = read_events(tmp_path / "abort" / "events.jsonl")
    first = next(e for e in events if e.kind == "health")
    assert (first.name, first.component) == ("vanishing_gradient", "market_context")
    end = events[-1]
    assert (end.name, end.severity, end.step) == ("run_end", "critical", 1)
    assert end.message.startswith("status=failed: TrainingFailed: step 1: vanishing_gradient")


def test_collapsed_head_is_reset_within_warmup_plus_patience_checks(debug_panel: Path, tmp_path: Path) -> None:
    health, objectives = _drill(debug_panel, tmp_path / "collapse", "faults.collapse_head=true", *FAST_GUARDS)
    collapsed = _first(health, "predictions_collapsed")
    assert collapsed["step"] <= 10 + 2 * 5  # warm-up, then `patience` checks `every` steps apart
    reset = _first(health, "degeneracy_reset")
    assert reset["step"] == collapsed["step"] and reset["value"] == 0.01  # logged with its scale
    assert not objectives["no_collapse"]["passed"] and not objectives["dispersion_ratio"]["passed"]


def test_collapsed_head_aborts_when_configured(debug_panel: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingFailed, match="predictions collapsed"):
        _drill(
            debug_panel,
            tmp_path / "c-abort",
            "faults.collapse_head=true",
            "health.degeneracy.action=abort",
            *FAST_GUARDS,
        )


def test_dead_feature_is_named(debug_panel: Path, tmp_path: Path) -> None:
    health, objectives = _drill(debug_panel, tmp_path / "feature", "faults.dead_feature=ret_1d")
    dead = [r for r in health if r["name"] == "dead_input"]
    assert [r["feature"] for r in dead] == ["ret_1d"] and dead[0]["step"] <= 50
    assert not objectives["no_dead_inputs"]["passed"] and "ret_1d" in objectives["no_dead_inputs"]["detail"]


def test_shuffled_labels_warn_then_raise_no_learning_signal_at_the_epoch_end(debug_panel: Path, tmp_path: Path) -> None:
    out = tmp_path / "shuffled"
    health, objectives = _drill(debug_panel, out, "faults.shuffle_labels=true", *FAST_SIGNAL)
    weak = [r for r in health if r["name"] == "weak_learning_signal"]
    # noise labels give each rolling check a t-statistic of pure noise: a horizon may pass a check by chance (and
    # log learning_signal_recovered: a warning clears itself), so each must warn at the first check after warmup
    # or soon after it
    assert {r["horizon"] for r in weak} == {1, 5, 10, 20} and all(100 <= r["step"] <= 200 for r in weak)
    assert min(r["step"] for r in weak) == 100 and {r["severity"] for r in weak} == {"warning"}
    # the verdict over all of epoch 0's days, at its end: critical on every horizon
    (epoch,) = [r for r in run_records(out) if r["kind"] == "epoch"]
    missing = [r for r in health if r["name"] == "no_learning_signal"]
    assert sorted(r["horizon"] for r in missing) == [1, 5, 10, 20]
    assert {(r["severity"], r["step"]) for r in missing} == {("critical", epoch["step"])}
    assert all(epoch[f"epoch_train_rank_ic_t_{h}d"] < 2.5 for h in (1, 5, 10, 20))
    assert not any(r["name"] == "learning_signal_confirmed" for r in health)
    signal = objectives["learning_signal"]
    assert (signal["passed"], signal["value"]) == (False, 4)
    assert all(f"{h}d t = " in signal["detail"] for h in (1, 5, 10, 20))


def test_shuffled_labels_abort_at_the_epoch_end_when_configured(debug_panel: Path, tmp_path: Path) -> None:
    out = tmp_path / "s-abort"
    with pytest.raises(TrainingFailed, match="no learning signal over the epoch at 1d, 5d, 10d, 20d"):
        _drill(debug_panel, out, "faults.shuffle_labels=true", "health.signal.action=abort", *FAST_SIGNAL)
    records = run_records(out)
    assert [r["kind"] for r in records if r["kind"] in ("epoch", "health")][-5:] == ["health"] * 4 + ["epoch"]


def test_nan_stops_the_run_at_its_step_naming_the_tensor(debug_panel: Path, tmp_path: Path) -> None:
    out = tmp_path / "nan"
    done = run_train("--config", DEBUG, "--data", debug_panel, "--out", out, "--set", "faults.nan_at_step=7")
    assert done.returncode == 1
    assert "step 7: non-finite value, first in loss" in done.stderr and "Traceback" not in done.stderr
    health = [r for r in run_records(out) if r["kind"] == "health"]
    assert [(r["name"], r["step"]) for r in health] == [("non_finite", 7)]
    assert (out / "nonfinite.safetensors").stat().st_size > 0
    assert (out / "report.json").exists()
