"""``atft exporter`` as the sidecar runs it: a real process pushing to a real Pushgateway on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from exporter.prom_servers import Server, free_port, pushed_value, pushgateway, pushgateway_groups, wait_for

from atft.telemetry import EventWriter, TelemetrySink

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'cli'}", "OMP_NUM_THREADS": "1"}
GROUPING = ["--grouping", "namespace=ml", "--grouping", "replica_type=master", "--grouping", "replica_index=0"]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Server]:
    server = pushgateway(tmp_path).start()
    yield server
    server.stop()


def _exporter(events: Path, url: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "atft_cli", "exporter", "--events", str(events), "--pushgateway", url, *GROUPING]
    with open(log, "wb") as fh:
        return subprocess.Popen([*cmd, *extra], env=ENV, stdout=fh, stderr=subprocess.STDOUT)


def _loss(gateway: Server, run_id: str = "r1") -> float | None:
    return pushed_value(gateway, "atft_train_loss", run_id=run_id, namespace="ml", replica_type="master")


def test_follows_a_file_that_appears_later_and_exits_0_after_run_end(gateway: Server, tmp_path: Path) -> None:
    events = tmp_path / "run" / "events.jsonl"
    proc = _exporter(events, gateway.url, tmp_path / "exporter.log", "--interval", "0.2")
    try:
        wait_for(lambda: b"waiting_for_events" in (tmp_path / "exporter.log").read_bytes(), 20, "the exporter to start")
        writer = EventWriter(events, run_id="r1")
        TelemetrySink(writer).log_dict("train", 25, {"epoch": 0, "loss": 0.75})
        wait_for(lambda: _loss(gateway) == 0.75, 20, "the first push with the training loss")
        writer.close()
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    (group,) = pushgateway_groups(gateway)
    assert group["labels"] == {
        "job": "atft",
        "namespace": "ml",
        "replica_type": "master",
        "replica_index": "0",
        "run_id": "r1",
    }
    assert pushed_value(gateway, "atft_run_state", state="succeeded") == 1.0


def test_sigterm_makes_a_final_push_and_exits_0(gateway: Server, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    writer = EventWriter(events, run_id="r1")
    sink = TelemetrySink(writer)
    sink.log_dict("train", 25, {"epoch": 0, "loss": 0.75})
    log = tmp_path / "exporter.log"
    # a long interval: after the first push, only the final push can deliver the second value
    proc = _exporter(events, gateway.url, log, "--interval", "3600", "--no-exit-on-end")
    try:
        wait_for(lambda: _loss(gateway) == 0.75, 20, "the first push")
        sink.log_dict("train", 50, {"epoch": 0, "loss": 0.5})
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    assert _loss(gateway) == 0.5
    assert '"reason": "stop requested", "pushed": true' in log.read_text()


def test_pushgateway_down_backs_off_then_delivers_everything(tmp_path: Path) -> None:
    port = free_port()
    events = tmp_path / "events.jsonl"
    log = tmp_path / "exporter.log"
    with EventWriter(events, run_id="r1") as writer:
        TelemetrySink(writer).log_dict("train", 25, {"epoch": 0, "loss": 0.75})
    proc = _exporter(events, f"http://127.0.0.1:{port}", log, "--interval", "0.2", "--max-backoff", "0.4")
    later = pushgateway(tmp_path, port)
    try:
        wait_for(lambda: log.read_text().count("push_failed") >= 3, 20, "three failed pushes")
        assert proc.poll() is None  # still retrying: the run ended, the final push has not succeeded yet
        later.start()
        assert proc.wait(timeout=30) == 0
        assert _loss(later) == 0.75
        failures = pushed_value(later, "atft_exporter_push_failures_total")
        assert failures is not None and failures >= 3
        assert "push_recovered" in log.read_text()
    finally:
        proc.kill()
        later.stop()


def test_invalid_lines_are_counted_and_a_foreign_run_id_is_a_named_error(gateway: Server, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    writer = EventWriter(events, run_id="r1")
    with open(events, "ab") as fh:
        fh.write(b"this is not an event\n")
    TelemetrySink(writer).log_dict("train", 25, {"epoch": 0, "loss": 0.75})
    writer.close()
    args = ["--events", str(events), "--pushgateway", gateway.url, *GROUPING]
    done = subprocess.run(
        [sys.executable, "-m", "atft_cli", "exporter", *args], env=ENV, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert pushed_value(gateway, "atft_exporter_invalid_lines_total") == 1.0 and _loss(gateway) == 0.75
    assert f'"where": "{events}:2"' in done.stderr

    args += ["--grouping", "run_id=other"]
    done = subprocess.run(
        [sys.executable, "-m", "atft_cli", "exporter", *args], env=ENV, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"error: {events}:1: run_id 'r1' differs from the grouping run_id 'other'" in done.stderr


def test_scrape_mode_serves_the_pushed_series_with_their_labels(tmp_path: Path) -> None:
    """Without a Pushgateway (the chart's PodMonitor): /metrics has the series a push would create."""
    from prometheus_client.parser import text_string_to_metric_families

    port = free_port()
    events = tmp_path / "events.jsonl"
    writer = EventWriter(events, run_id="r1")
    TelemetrySink(writer).log_dict("train", 25, {"epoch": 0, "loss": 0.75})
    args = ["--events", str(events), "--listen-port", str(port), "--listen-address", "127.0.0.1", *GROUPING]
    proc = subprocess.Popen([sys.executable, "-m", "atft_cli", "exporter", *args], env=ENV, stderr=subprocess.PIPE)
    try:

        def scrape() -> dict[str, dict[str, str]] | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                text = response.read().decode()
            samples = {s.name: s.labels for f in text_string_to_metric_families(text) for s in f.samples}
            return samples if "atft_train_loss" in samples else None

        samples = wait_for(scrape, 30, "the exporter's /metrics")
        assert samples["atft_train_loss"] == {
            "job": "atft",
            "namespace": "ml",
            "replica_type": "master",
            "replica_index": "0",
            "run_id": "r1",
        }
        writer.close()
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    assert proc.stderr is not None and b"scrape mode" in proc.stderr.read()
