"""The telemetry event stream: schema round trip, strict JSON, the writer, the sinks."""

from __future__ import annotations

import io
import json
import math
import os
import re
import sys
from pathlib import Path

import pytest
from rich.console import Console

import atft.telemetry.events as events_module
from atft.errors import ConfigError, InputFileError, Preempted
from atft.health.events import HealthEvent
from atft.telemetry.events import (
    SCHEMA_VERSION,
    Event,
    EventWriter,
    TelemetrySink,
    read_events,
    read_stream,
    records,
    split_key,
)
from atft.telemetry.sinks import HealthConsoleSink, TensorBoardSink

FULL = {
    "run_id": "run-1",
    "kind": "health",
    "name": "vanishing_gradient",
    "step": 120,
    "epoch": 2,
    "rank": 0,
    "component": "temporal_encoder",
    "horizon": 5,
    "feature": "flow_imbalance",
    "severity": "critical",
    "message": 'norm "tiny"\nsecond line',
    "time": 1_700_000_000.25,
}


def strict_loads(line: str) -> dict:
    """json.loads that refuses the NaN/Infinity tokens Python's json writes by default."""

    def refuse(token: str) -> None:
        raise AssertionError(f"non-strict JSON token {token} in {line!r}")

    return json.loads(line, parse_constant=refuse)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.mark.parametrize("value", [0.125, -3.0, math.nan, math.inf, -math.inf, None])
def test_event_round_trips_every_field(value: float | None) -> None:
    event = Event(**FULL, value=value)
    line = event.to_json()
    back = Event.from_json(line)
    assert "\n" not in line
    assert list(strict_loads(line)) == sorted(strict_loads(line))
    for name in FULL:
        assert getattr(back, name) == FULL[name], name
    assert back.v == SCHEMA_VERSION
    if value is not None and math.isnan(value):
        assert back.value is not None and math.isnan(back.value)
    else:
        assert back.value == value


def test_optional_fields_round_trip_as_null() -> None:
    event = Event(run_id="r", kind="metric", name="train/loss", step=1, epoch=0, value=0.5)
    assert strict_loads(event.to_json())["component"] is None
    assert Event.from_json(event.to_json()) == event


@pytest.mark.parametrize(
    ("value", "written"), [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity"), (2, 2.0)]
)
def test_non_finite_values_are_strings_in_strict_json(value: float, written: object) -> None:
    line = Event(run_id="r", kind="metric", name="train/loss", step=1, epoch=0, value=value).to_json()
    assert strict_loads(line)["value"] == written


def test_from_json_rejects_an_unknown_schema_version() -> None:
    record = strict_loads(Event(**FULL).to_json()) | {"v": 2}
    with pytest.raises(ValueError, match=r"unknown schema version v=2"):
        Event.from_json(json.dumps(record))


def test_from_json_names_every_missing_field() -> None:
    record = strict_loads(Event(**FULL).to_json())
    del record["epoch"], record["severity"]
    with pytest.raises(ValueError, match=r"missing field\(s\) epoch, severity"):
        Event.from_json(json.dumps(record))
    del record["v"]
    with pytest.raises(ValueError, match=r"missing field v"):
        Event.from_json(json.dumps(record))


def test_from_json_names_a_field_of_the_wrong_type_or_value() -> None:
    record = strict_loads(Event(**FULL).to_json())
    with pytest.raises(ValueError, match=r"step: expected an int"):
        Event.from_json(json.dumps(record | {"step": "12"}))
    with pytest.raises(ValueError, match=r"severity: 'fatal' is not one of info, warning, critical"):
        Event.from_json(json.dumps(record | {"severity": "fatal"}))
    with pytest.raises(ValueError, match=r"kind: 'scalar' is not one of"):
        Event.from_json(json.dumps(record | {"kind": "scalar"}))
    with pytest.raises(ValueError, match=r"value 'nan' is a string"):
        Event.from_json(json.dumps(record | {"value": "nan"}))


def test_from_json_rejects_bare_nan_tokens() -> None:
    line = json.dumps(strict_loads(Event(**FULL).to_json()) | {"value": math.nan})  # Python writes NaN
    assert "NaN" in line
    with pytest.raises(ValueError, match=r"bare NaN is not strict JSON"):
        Event.from_json(line)


def test_from_json_ignores_fields_added_later_in_v1() -> None:
    record = strict_loads(Event(**FULL).to_json()) | {"host": "node-3"}
    assert Event.from_json(json.dumps(record)) == Event(**FULL)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("grad_norm/temporal_encoder", ("grad_norm", "temporal_encoder", None)),
        ("grad_max/graph", ("grad_max", "graph", None)),
        ("rank_ic_5d", ("rank_ic", None, 5)),
        ("dispersion_ratio_20d", ("dispersion_ratio", None, 20)),
        ("train_rank_ic_1d", ("train_rank_ic", None, 1)),
        ("grad_norm", ("grad_norm", None, None)),
        ("loss", ("loss", None, None)),
        ("stock_days_per_s", ("stock_days_per_s", None, None)),
        ("events/vanishing_gradient", ("events/vanishing_gradient", None, None)),
        ("days", ("days", None, None)),
    ],
)
def test_split_key(key: str, expected: tuple[str, str | None, int | None]) -> None:
    assert split_key(key) == expected


def test_writer_appends_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path, "run-1") as writer:
        writer.emit("metric", "train/loss", step=10, epoch=0, value=0.5)
    with EventWriter(path, "run-1", step=10, epoch=1) as writer:
        writer.emit("metric", "train/loss", step=20, epoch=1, value=math.nan)
    for line in lines(path):
        strict_loads(line)
    events = read_events(path)
    assert [(e.kind, e.name, e.step) for e in events] == [
        ("lifecycle", "run_start", 0),
        ("metric", "train/loss", 10),
        ("lifecycle", "run_end", 10),
        ("lifecycle", "run_start", 10),
        ("metric", "train/loss", 20),
        ("lifecycle", "run_end", 20),
    ]
    assert events[0].message == "new stream"
    assert events[3].message == "appending to an existing stream"
    assert events[2].message == "status=ok" and events[2].severity == "info"
    assert events[4].value is not None and math.isnan(events[4].value)


def test_writer_records_a_failed_run(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with pytest.raises(RuntimeError), EventWriter(path, "run-1") as writer:
        writer.emit("metric", "train/loss", step=3, epoch=1, value=1.0)
        raise RuntimeError("loss is nan")
    end = read_events(path)[-1]
    assert (end.name, end.severity, end.step, end.epoch) == ("run_end", "critical", 3, 1)
    assert end.message == "status=failed: RuntimeError: loss is nan"
    with pytest.raises(ValueError, match=r"writer is closed"):
        writer.emit("metric", "train/loss", step=4, epoch=1, value=1.0)


def test_writer_records_a_preempted_run_as_preempted_not_failed(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with pytest.raises(Preempted), EventWriter(path, "run-1") as writer:
        writer.emit("metric", "train/loss", step=3, epoch=1, value=1.0)
        raise Preempted("SIGTERM at step 3: checkpoint written")
    end = read_events(path)[-1]
    assert (end.name, end.severity) == ("run_end", "warning")
    assert end.message == "status=preempted: SIGTERM at step 3: checkpoint written"


def test_rank_1_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path, "run-1", rank=1)
    event = writer.emit("metric", "train/loss", step=1, epoch=0, value=0.5)
    TelemetrySink(writer).log_dict("epoch", 1, {"epoch": 0, "wall_s": 1.0})
    writer.fsync()
    writer.close()
    assert event.rank == 1
    assert not path.exists()
    with pytest.raises(ValueError, match=r"severity"):  # other ranks still validate
        EventWriter(path, "run-1", rank=1).emit("health", "x", step=1, epoch=0, severity="bad")  # type: ignore[arg-type]


def test_fsync_syncs_the_stream_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path, "run-1")
    synced: list[int] = []
    real_fsync = os.fsync

    def record(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(events_module.os, "fsync", record)
    writer.emit("metric", "val/loss", step=5, epoch=0, value=0.25)
    writer.fsync()
    assert synced == [path.stat().st_ino]
    assert [e.name for e in read_events(path)] == ["run_start", "val/loss"]  # on disk before close
    writer.close()


def test_a_torn_final_line_is_cut_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    EventWriter(path, "run-1").close()
    with open(path, "a") as fh:
        fh.write('{"v":1,"run_id":"ru')  # a writer killed mid-line
    with EventWriter(path, "run-1"):
        pass
    events = read_events(path)
    assert [e.name for e in events] == ["run_start", "run_end", "run_start", "run_end"]
    assert events[2].severity == "warning"
    assert "torn final line of 19 bytes" in events[2].message


def test_read_events_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = Event(**FULL).to_json()
    bad = good.replace('"v":1', '"v":7')
    path.write_text(f"{good}\n{bad}\n")
    with pytest.raises(InputFileError, match=rf"{re.escape(str(path))}:2: .*v=7"):
        read_events(path)
    with pytest.raises(InputFileError, match=r"no such file"):
        read_events(tmp_path / "missing.jsonl")


def test_sink_turns_loop_records_into_events(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path, "run-1")
    sink = TelemetrySink(writer)
    sink.log_dict("preflight", 0, {"loss": 1.5, "grad_norm/temporal_encoder": 0.3, "grad_norm/graph": 0.0})
    sink.log_dict("train", 10, {"epoch": 1, "loss": 0.9, "lr": 1e-3, "grad_norm": math.inf})
    sink.log_dict("val", 10, {"epoch": 1, "loss": 0.8, "rank_ic_5d": 0.05, "dispersion_ratio_20d": 0.7})
    sink.log_dict("cost", 12, {"wall_s": 3.0, "device": "cpu", "peak_rss_bytes": 1024})
    assert [e.name for e in read_events(path)][-1] == "cost/peak_rss_bytes"  # flushed, writer still open
    writer.close()
    got = {
        (e.name, e.component, e.horizon): (e.step, e.epoch, e.value) for e in read_events(path) if e.kind == "metric"
    }
    assert got == {
        ("preflight/loss", None, None): (0, 0, 1.5),
        ("preflight/grad_norm", "temporal_encoder", None): (0, 0, 0.3),
        ("preflight/grad_norm", "graph", None): (0, 0, 0.0),
        ("train/loss", None, None): (10, 1, 0.9),
        ("train/lr", None, None): (10, 1, 1e-3),
        ("train/grad_norm", None, None): (10, 1, math.inf),
        ("val/loss", None, None): (10, 1, 0.8),
        ("val/rank_ic", None, 5): (10, 1, 0.05),
        ("val/dispersion_ratio", None, 20): (10, 1, 0.7),
        ("cost/wall_s", None, None): (12, 1, 3.0),  # no epoch in the record: the last one seen
        ("cost/peak_rss_bytes", None, None): (12, 1, 1024.0),
        ("cost/device", None, None): (12, 1, None),  # a string: its text is the message
    }
    assert next(e for e in read_events(path) if e.name == "cost/device").message == "cpu"
    assert all(e.severity == "info" and e.rank == 0 for e in read_events(path))


def test_sink_epoch_record_ends_the_epoch_with_an_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = EventWriter(tmp_path / "events.jsonl", "run-1")
    synced: list[int] = []
    monkeypatch.setattr(events_module.os, "fsync", synced.append)
    sink = TelemetrySink(writer)
    sink.log_dict("train", 5, {"epoch": 3, "loss": 0.5})
    assert synced == []
    sink.log_dict("epoch", 6, {"epoch": 3, "wall_s": 2.0, "days": 40})
    assert len(synced) == 1
    writer.close()
    events = read_events(tmp_path / "events.jsonl")
    assert [(e.kind, e.name, e.epoch) for e in events[-3:]] == [
        ("metric", "epoch/days", 3),
        ("lifecycle", "epoch_end", 3),
        ("lifecycle", "run_end", 3),
    ]


def test_sink_health_record_is_one_health_event(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path, "run-1") as writer:
        sink = TelemetrySink(writer)
        sink.log_dict("train", 7, {"epoch": 2, "loss": 0.5})
        sink.health(HealthEvent("predictions_collapsed", 8, math.nan, "critical", horizon=5, message="std ratio 0.001"))
        sink.health(HealthEvent("dead_input", 9, 0, feature="rsi_14"))
    found = [e for e in read_events(path) if e.kind == "health"]
    assert len(found) == 2
    first, second = found
    assert (first.name, first.horizon, first.component, first.step, first.epoch) == (
        "predictions_collapsed",
        5,
        None,
        8,
        2,
    )
    assert first.severity == "critical" and first.message == "std ratio 0.001"
    assert first.value is not None and math.isnan(first.value)
    assert (second.feature, second.value, second.severity) == ("rsi_14", 0.0, "warning")


def test_bad_health_events_and_non_numbers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"name: expected a non-empty string"):
        HealthEvent("", 1, 1.0)
    with pytest.raises(ValueError, match=r"severity: 'loud'"):
        HealthEvent("x", 1, severity="loud")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"horizon: expected int"):
        HealthEvent("x", 1, horizon="5d")  # type: ignore[arg-type]
    sink = TelemetrySink(EventWriter(tmp_path / "events.jsonl", "run-1"))
    with pytest.raises(TypeError, match=r"val record at step 1: horizons is a list"):
        sink.log_dict("val", 1, {"horizons": [1, 5]})


def test_health_console_sink_prints_loudly() -> None:
    buf = io.StringIO()
    sink = HealthConsoleSink(Console(file=buf, force_terminal=True, color_system="standard", width=200))
    sink.log_dict("train", 3, {"loss": 1.0})
    assert buf.getvalue() == ""
    sink.log_dict("train", 119, {"epoch": 2, "loss": 1.0})
    sink.health(
        HealthEvent("vanishing_gradient", 120, 3e-9, "critical", component="temporal_encoder", message="under 1e-8")
    )
    out = buf.getvalue()
    assert "\x1b[1;37;41m CRITICAL " in out  # bold white on red
    plain = Console(file=io.StringIO()).render_str(out).plain
    for part in (
        "vanishing_gradient",
        "component=temporal_encoder",
        "step=120",
        "epoch=2",
        "value=3e-09",
        "under 1e-8",
    ):
        assert part in plain


def test_tensorboard_sink_writes_readable_scalars(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sink = TensorBoardSink(tmp_path / "tb")
    sink.log_dict("train", 10, {"epoch": 0, "loss": 0.75, "grad_norm": math.nan, "device": "cpu"})
    sink.log_dict("val", 12, {"rank_ic_5d": 0.125})
    sink.health(HealthEvent("vanishing_gradient", 12, component="graph"))
    sink.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/epoch", "val/rank_ic_5d", "health/vanishing_gradient/graph"} <= scalars
    assert "train/grad_norm" not in scalars and "train/device" not in scalars
    assert [(s.step, s.value) for s in acc.Scalars("train/loss")] == [(10, 0.75)]
    assert [(s.step, s.value) for s in acc.Scalars("health/vanishing_gradient/graph")] == [(12, 1.0)]
    assert any(tag.startswith("health/vanishing_gradient/graph") for tag in acc.Tags()["tensors"])


@pytest.mark.parametrize("module", ["tensorboard", "torch.utils.tensorboard"])
def test_tensorboard_sink_without_the_package_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # None in sys.modules: the import raises ImportError
    with pytest.raises(ConfigError, match=r"needs the package 'tensorboard'.*pip install 'atft\[tensorboard\]'"):
        TensorBoardSink(tmp_path / "tb")
    assert not (tmp_path / "tb").exists()


def test_the_documented_examples_are_valid_events() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "telemetry.md").read_text()
    examples = [line for line in doc.splitlines() if line.startswith('{"component"')]
    events = [Event.from_json(line) for line in examples]
    assert {e.kind for e in events} == {"metric", "health", "lifecycle"}
    assert all(line == e.to_json() for line, e in zip(examples, events, strict=True))  # sorted, compact


def test_records_give_back_what_the_sink_was_given(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    logged = [
        ("preflight", 0, {"loss": 0.5, "grad_norm/graph": 0.1}),
        ("train", 10, {"epoch": 0, "loss": 0.4, "lr": 1e-3}),
        ("grad", 10, {"epoch": 0, "grad_norm/temporal_encoder": 0.2, "act_grad/projected": 0.01}),
        ("val", 10, {"epoch": 0, "rank_ic_5d": 0.05, "ic_20d": math.nan}),
        ("cost", 10, {"wall_s": 3.0, "device": "cpu", "gpu": None}),
    ]
    with EventWriter(path, "run-1") as writer:
        sink = TelemetrySink(writer)
        for kind, step, values in logged:
            sink.log_dict(kind, step, values)
        sink.health(HealthEvent("dead_input", 10, 0.0, "critical", feature="rsi_14", message="flat"))
    got = records(read_events(path))
    assert [(r["kind"], r["step"]) for r in got] == [(k, s) for k, s, _ in logged] + [("health", 10)]
    for record, (_, _, values) in zip(got, logged, strict=False):
        expected = {k: v for k, v in values.items() if v is not None and k != "epoch"}
        assert {
            k: record[k] for k in expected if not isinstance(expected[k], float) or not math.isnan(expected[k])
        } == {k: v for k, v in expected.items() if not isinstance(v, float) or not math.isnan(v)}
        assert set(record) - {"kind", "step", "epoch", "time"} == set(expected)
    assert math.isnan(got[3]["ic_20d"]) and got[4]["device"] == "cpu"
    assert got[-1] | {"time": 0} == {
        "kind": "health",
        "step": 10,
        "epoch": 0,
        "time": 0,
        "name": "dead_input",
        "value": 0.0,
        "severity": "critical",
        "feature": "rsi_14",
        "message": "flat",
    }


def test_a_resumed_stream_reads_each_step_once_and_keeps_every_stop_and_start(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path, "run-1") as writer:
        sink = TelemetrySink(writer)
        sink.log_dict("train", 10, {"epoch": 0, "loss": 0.5})
        checkpoint = path.stat().st_size  # what a checkpoint at step 10 stores
        sink.log_dict("train", 20, {"epoch": 0, "loss": 0.4})  # replayed after the kill
        sink.health(HealthEvent("degeneracy_check_failed", 20, 0.01, horizon=5))  # replayed too
    with EventWriter(path, "run-1", step=10, resumed_from=checkpoint) as writer:
        TelemetrySink(writer).log_dict("train", 20, {"epoch": 0, "loss": 0.4})
    everything = read_events(path)
    assert [e.name for e in everything].count("train/loss") == 3  # the file is only appended to
    current, torn = read_stream(path)
    assert torn is None
    assert [(e.name, e.step) for e in current] == [
        ("run_start", 0),
        ("train/loss", 10),
        ("run_end", 20),
        ("run_start", 10),
        ("train/loss", 20),
        ("run_end", 20),
    ]
    assert current[3].value == checkpoint and "resumed from step 10" in current[3].message


def test_read_stream_leaves_out_a_torn_last_line_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path, "run-1") as writer:
        writer.emit("metric", "train/loss", step=1, epoch=0, value=0.5)
    with open(path, "a") as fh:
        fh.write('{"v": 1, "kind": "met')
    events, torn = read_stream(path)
    assert [e.name for e in events] == ["run_start", "train/loss", "run_end"] and torn == 4
    with pytest.raises(InputFileError, match=r"events.jsonl:4: the last line has no newline"):
        read_events(path)
