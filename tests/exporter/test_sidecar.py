"""The exporter's loop over hostile files (in process): nothing stops it, each bad line is counted once by its
reason, the metrics are those of the good lines; a preempted run is its own state and its resume goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from exporter.hostile import HOSTILE, RUN_ID, spoil, write_run
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from atft.errors import Preempted
from atft.exporter import Exporter, ExporterOptions
from atft.exporter.lines import SKIP_REASONS
from atft.exporter.metrics import MAX_LABEL_KEYS
from atft.exporter.sidecar import LOGGED_SKIPS
from atft.health.events import HealthEvent
from atft.telemetry.events import Event, EventWriter, TelemetrySink

SKIPPED = "atft_exporter_skipped_lines_total"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _exporter(path: Path) -> Exporter:
    return Exporter(ExporterOptions(events=path, pushgateway="", job="test", grouping={"run_id": RUN_ID}))


def _samples(exporter: Exporter) -> Samples:
    """Every sample the exporter would push, parsed back from the exposition text."""
    text = generate_latest(exporter.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _without_skips(samples: Samples) -> Samples:
    return {key: value for key, value in samples.items() if key[0] != SKIPPED}


def _skips(samples: Samples) -> dict[str, float]:
    return {dict(labels)["reason"]: value for (name, labels), value in samples.items() if name == SKIPPED}


def test_hostile_lines_are_counted_once_by_reason_and_change_nothing_else(tmp_path: Path) -> None:
    benign, hostile = tmp_path / "benign.jsonl", tmp_path / "hostile.jsonl"
    write_run(benign)
    expected = spoil(benign, hostile)
    good = benign.read_bytes().splitlines()
    clean, dirty = _exporter(benign), _exporter(hostile)
    assert clean.drain() == len(good)
    assert dirty.drain() == len(good) + len(HOSTILE)  # every line read, none raised
    assert dirty.drain() == 0  # and each counted once
    assert _skips(_samples(dirty)) == expected
    assert _skips(_samples(clean)) == {reason: 0.0 for reason in SKIP_REASONS}
    assert _without_skips(_samples(dirty)) == _without_skips(_samples(clean))


def test_skipped_lines_are_logged_a_bounded_number_of_times(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"not json\n" * 1000 + b"\xff\n" * 3)
    exporter = _exporter(path)
    exporter.drain()
    logs = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    skipped = [r for r in logs if r["event"] == "skipped_line"]
    assert [r["reason"] for r in skipped] == ["not_json"] * LOGGED_SKIPS + ["not_utf8"] * 3
    assert skipped[0]["where"] == f"{path}:1" and "not JSON" in skipped[0]["error"]
    assert [r["reason"] for r in logs if r["event"] == "skips_not_logged"] == ["not_json"]
    assert _skips(_samples(exporter))["not_json"] == 1000.0


def test_made_up_label_values_cannot_grow_the_state(tmp_path: Path) -> None:
    """Ten times the label budget of distinct component names: the series stop growing at the bound."""
    path = tmp_path / "events.jsonl"
    with EventWriter(path, run_id=RUN_ID) as writer:
        sink = TelemetrySink(writer)
        for i in range(10 * MAX_LABEL_KEYS):
            sink.log_dict("grad", i, {f"grad_norm/made_up_{i}": 0.1})
    exporter = _exporter(path)
    exporter.drain()
    assert _skips(_samples(exporter))["label_limit"] == 9 * MAX_LABEL_KEYS
    components = {dict(labels)["component"] for name, labels in _samples(exporter) if "component" in dict(labels)}
    assert len(components) == MAX_LABEL_KEYS
    assert len(exporter.metrics) < 5 * MAX_LABEL_KEYS


def test_a_preempted_run_is_its_own_state_and_its_resume_continues_the_series(tmp_path: Path) -> None:
    """SIGTERM ends the run with status=preempted: not failed, finished; the resumed run appends run_start to the
    same file and the same exporter reads on: running again, counters going on from where they were."""
    path = tmp_path / "events.jsonl"
    with pytest.raises(Preempted), EventWriter(path, run_id=RUN_ID) as writer:
        sink = TelemetrySink(writer)
        sink.log_dict("train", 25, {"epoch": 0, "loss": 0.9})
        sink.health(HealthEvent("degeneracy_check_failed", 25, 0.01, horizon=5))
        raise Preempted("SIGTERM at step 25: checkpoint written")
    exporter = _exporter(path)
    exporter.drain()
    state = {dict(labels)["state"]: v for (name, labels), v in _samples(exporter).items() if name == "atft_run_state"}
    assert state == {"running": 0.0, "succeeded": 0.0, "preempted": 1.0, "failed": 0.0}
    assert exporter.metrics.finished  # a plain sidecar exits, as after any end
    metrics = exporter.metrics

    with EventWriter(path, run_id=RUN_ID, step=25) as writer:
        sink = TelemetrySink(writer)
        sink.log_dict("train", 50, {"epoch": 0, "loss": 0.8})
        sink.health(HealthEvent("degeneracy_check_failed", 50, 0.01, horizon=5))
        exporter.drain()
        running = _samples(exporter)
        assert running[("atft_run_state", (("state", "running"),))] == 1.0
        assert running[("atft_run_state", (("state", "preempted"),))] == 0.0
        assert not exporter.metrics.finished
    exporter.drain()
    done = _samples(exporter)
    assert exporter.metrics is metrics  # the same stream, not a restart
    assert done[("atft_run_state", (("state", "succeeded"),))] == 1.0
    assert done[("atft_run_starts_total", ())] == 2.0
    assert done[("atft_degeneracy_checks_failed_total", (("horizon", "5"),))] == 2.0
    assert done[("atft_train_loss", ())] == pytest.approx(0.8) and done[("atft_step", ())] == 50.0


def test_a_run_id_that_cannot_be_a_grouping_key_is_not_adopted(tmp_path: Path) -> None:
    """Without --grouping run_id= the first event's run_id becomes the push URL's: an empty or huge one would
    make every push fail, so it is skipped and the next event's is taken."""
    path = tmp_path / "events.jsonl"
    lines = [
        Event(run_id=rid, kind="lifecycle", name="run_start", step=0, epoch=0).to_json() for rid in ("", "r" * 500)
    ]
    path.write_text("\n".join(lines) + "\n")
    write_run(path)
    exporter = Exporter(ExporterOptions(events=path, pushgateway="", job="test"))
    exporter.drain()
    assert exporter.run_id == RUN_ID
    assert _skips(_samples(exporter))["label_limit"] == 2.0
    assert _samples(exporter)[("atft_run_starts_total", ())] == 1.0
