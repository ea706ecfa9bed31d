"""Events -> Prometheus series: names, state gauges, counters from first sight, bounded series count."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from atft.exporter.metrics import FAMILIES, GAUGES, HEALTH_COUNTERS, RunMetrics
from atft.health.events import HealthEvent
from atft.telemetry.events import EventWriter, TelemetrySink, read_events

COMPONENTS = ("temporal_encoder", "graph_block")


def _grad(sink: TelemetrySink, step: int, norms: dict[str, float]) -> None:
    sink.log_dict("grad", step, {"epoch": 0, **{f"grad_norm/{c}": n for c, n in norms.items()}})


def _health(sink: TelemetrySink, event: HealthEvent) -> None:
    sink.health(event)


def _metrics(path: Path) -> RunMetrics:
    metrics = RunMetrics()
    for event in read_events(path):
        metrics.observe(event)
    return metrics


def _samples(metrics: RunMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every exported sample, parsed back from the text exposition format (what the Pushgateway receives)."""
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_every_family_follows_prometheus_naming() -> None:
    for name, family in FAMILIES.items():
        assert name.startswith("atft_") and name == family.name
        assert name.endswith("_total") == (family.type == "counter"), name
    assert set(GAUGES.values()) | set(HEALTH_COUNTERS.values()) <= set(FAMILIES)


def test_nothing_is_exported_before_it_is_measured(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    EventWriter(path, run_id="r").fsync()  # run_start only
    names = {name for name, _ in _samples(_metrics(path))}
    assert "atft_train_loss" not in names and "atft_validation_rank_ic" not in names
    assert {"atft_run_state", "atft_step", "atft_non_finite_events_total"} <= names


def test_vanishing_gradient_state_follows_the_latest_check(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path, run_id="r") as writer:
        sink = TelemetrySink(writer)
        sink.log_dict("preflight", 0, {"grad_norm/temporal_encoder": 0.0, "grad_norm/graph_block": 0.3})
        _grad(sink, 1, {"temporal_encoder": 0.0, "graph_block": 0.3})
        _health(sink, HealthEvent("vanishing_gradient", 1, 0.0, "critical", component="temporal_encoder"))
        mid = _samples(_metrics(path))
        _grad(sink, 50, {"temporal_encoder": 0.2, "graph_block": 0.3})
    vanishing = ("atft_gradient_vanishing", (("component", "temporal_encoder"),))
    events = ("atft_vanishing_gradient_events_total", (("component", "temporal_encoder"),))
    assert mid[vanishing] == 1.0 and mid[("atft_gradient_vanishing", (("component", "graph_block"),))] == 0.0
    assert mid[("atft_vanishing_gradient_events_total", (("component", "graph_block"),))] == 0.0  # zero from preflight
    end = _samples(_metrics(path))
    assert end[vanishing] == 0.0 and end[events] == 1.0  # the state clears, the count stays
    assert end[("atft_gradient_l2_norm", (("component", "temporal_encoder"),))] == pytest.approx(0.2)


def test_collapse_and_signal_states_clear_on_recovery_and_counters_count(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path, run_id="r") as writer:
        sink = TelemetrySink(writer)
        sink.log_dict("signal", 25, {"epoch": 0, "dispersion_ema_5d": 0.5, "dispersion_ema_20d": 0.4})
        for step in (50, 75):
            _health(sink, HealthEvent("degeneracy_check_failed", step, 0.01, horizon=5))
        _health(sink, HealthEvent("predictions_collapsed", 75, 0.01, "critical", horizon=5))
        _health(sink, HealthEvent("degeneracy_reset", 75, 0.01, horizon=5))
        _health(sink, HealthEvent("weak_learning_signal", 90, 0.0, horizon=20))
        _health(sink, HealthEvent("learning_signal_unconfirmed", 100, 0.01, horizon=10))  # a warning: pages nobody
        _health(sink, HealthEvent("no_learning_signal", 100, 0.0, "critical", horizon=20))
        sink.log_dict("epoch", 100, {"epoch": 0, "epoch_train_rank_ic_20d": 0.001, "epoch_train_rank_ic_t_20d": 0.2})
        collapsed = _samples(_metrics(path))
        _health(sink, HealthEvent("degeneracy_recovered", 125, 0.3, "info", horizon=5))
        _health(sink, HealthEvent("learning_signal_recovered", 150, 0.05, "info", horizon=20))
        recovered = _samples(_metrics(path))
        _health(sink, HealthEvent("learning_signal_confirmed", 200, 0.05, "info", horizon=20))
    h5, h20 = (("horizon", "5"),), (("horizon", "20"),)
    assert collapsed[("atft_predictions_collapsed", h5)] == 1.0
    assert collapsed[("atft_predictions_collapsed", h20)] == 0.0
    assert (
        collapsed[("atft_learning_signal_missing", h20)] == 1.0 and collapsed[("atft_learning_signal_weak", h20)] == 1.0
    )
    assert collapsed[("atft_learning_signal_weak", h5)] == 0.0  # zero since the horizon was first seen
    assert collapsed[("atft_learning_signal_missing", (("horizon", "10"),))] == 0.0
    unconfirmed = (("component", ""), ("event", "learning_signal_unconfirmed"), ("feature", ""), ("horizon", "10"))
    assert collapsed[("atft_health_events_total", unconfirmed)] == 1.0
    assert collapsed[("atft_epoch_train_rank_ic_tstat", h20)] == pytest.approx(0.2)
    # the rolling window's recovery clears the warning only; the next epoch's verdict clears the critical state
    assert (
        recovered[("atft_learning_signal_weak", h20)] == 0.0 and recovered[("atft_learning_signal_missing", h20)] == 1.0
    )
    assert collapsed[("atft_degeneracy_checks_failed_total", h5)] == 2.0
    assert collapsed[("atft_degeneracy_resets_total", h5)] == 1.0
    assert collapsed[("atft_degeneracy_resets_total", h20)] == 0.0  # zero since the signal record named 20d
    assert collapsed[("atft_prediction_dispersion_ratio", h20)] == pytest.approx(0.4)
    end = _samples(_metrics(path))
    assert end[("atft_predictions_collapsed", h5)] == 0.0 and end[("atft_learning_signal_missing", h20)] == 0.0
    where = (("component", ""), ("event", "degeneracy_check_failed"), ("feature", ""), ("horizon", "5"))
    assert end[("atft_health_events_total", where)] == 2.0


def test_run_state_across_a_failure_and_a_resume(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path, run_id="r")
    TelemetrySink(writer).log_dict("train", 10, {"epoch": 0, "loss": 0.9})
    writer.close("failed: TrainingFailed: pre-flight found no gradient")
    failed = _metrics(path)
    assert failed.finished
    assert _samples(failed)[("atft_run_state", (("state", "failed"),))] == 1.0
    with EventWriter(path, run_id="r", step=10) as resumed:
        TelemetrySink(resumed).log_dict("train", 20, {"epoch": 0, "loss": 0.8})
        running = _metrics(path)
        assert not running.finished
        assert _samples(running)[("atft_run_state", (("state", "running"),))] == 1.0
    done = _samples(_metrics(path))
    assert done[("atft_run_state", (("state", "succeeded"),))] == 1.0
    assert done[("atft_run_starts_total", ())] == 2.0
    assert done[("atft_train_loss", ())] == pytest.approx(0.8) and done[("atft_step", ())] == 20.0


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("ok", "succeeded"),
        ("preempted: SIGTERM at step 3: checkpoint written", "preempted"),
        ("failed: TrainingFailed: non-finite loss", "failed"),
        ("preempted-by-hand", "failed"),  # only the writer's own word counts
    ],
)
def test_the_end_status_gives_one_state(tmp_path: Path, status: str, state: str) -> None:
    path = tmp_path / "events.jsonl"
    EventWriter(path, run_id="r").close(status)
    samples = _samples(_metrics(path))
    states = {dict(labels)["state"]: v for (name, labels), v in samples.items() if name == "atft_run_state"}
    assert states == {s: float(s == state) for s in ("running", "succeeded", "preempted", "failed")}


def test_step_clock_moves_only_when_the_step_goes_up(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path, run_id="r") as writer:
        sink = TelemetrySink(writer)
        sink.log_dict("train", 5, {"epoch": 0, "loss": 1.0})
        advanced = _samples(_metrics(path))[("atft_step_advanced_timestamp_seconds", ())]
        sink.log_dict("val", 5, {"epoch": 0, "loss": 1.0})  # evaluation: same step, later time
    end = _samples(_metrics(path))
    assert end[("atft_step_advanced_timestamp_seconds", ())] == advanced
    assert end[("atft_last_event_timestamp_seconds", ())] > advanced


def test_series_count_does_not_grow_with_the_number_of_events(tmp_path: Path) -> None:
    """The state is keyed by component/horizon/state, never by step: 10x the events, the same series."""

    def series_after(steps: int) -> int:
        path = tmp_path / f"events-{steps}.jsonl"
        with EventWriter(path, run_id="r") as writer:
            sink = TelemetrySink(writer)
            for step in range(1, steps + 1):
                sink.log_dict("train", step, {"epoch": step // 50, "loss": 1.0 / step, "lr": 1e-3})
                _grad(sink, step, {c: 0.1 for c in COMPONENTS})
                sink.log_dict("signal", step, {"train_rank_ic_5d": 0.01, "dispersion_ema_5d": 0.5})
                _health(sink, HealthEvent("degeneracy_check_failed", step, 0.01, horizon=5))
        return len(_metrics(path))

    assert series_after(300) == series_after(30)


def test_docs_list_every_metric() -> None:
    from atft.exporter.push import OWN_FAMILIES

    docs = (Path(__file__).resolve().parents[2] / "docs" / "monitoring.md").read_text()
    missing = [name for name in [*FAMILIES, *OWN_FAMILIES] if f"| `{name}` |" not in docs]
    assert missing == []
