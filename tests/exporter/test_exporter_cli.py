"""``atft exporter`` as the sidecar runs it: a real process pushing to a real Pushgateway on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from exporter.hostile import spoil, write_run
from exporter.prom_servers import Server, free_port, pushed_value, pushgateway, pushgateway_groups, wait_for

from atft.telemetry.events import EventWriter, TelemetrySink

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'cli'}", "OMP_NUM_THREADS": "1"}
SKIPPED = "atft_exporter_skipped_lines_total"
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


def _run_exporter(events: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["--events", str(events), "--pushgateway", url, *GROUPING, *extra]
    cmd = [sys.executable, "-m", "atft_cli", "exporter", *args]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)


def test_bad_lines_and_another_runs_events_are_skipped_and_counted(gateway: Server, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    writer = EventWriter(events, run_id="r1")
    with open(events, "ab") as fh:
        fh.write(b"this is not an event\n")
    TelemetrySink(writer).log_dict("train", 25, {"epoch": 0, "loss": 0.75})
    writer.close()
    done = _run_exporter(events, gateway.url)
    assert done.returncode == 0, done.stderr
    assert _skipped(gateway, "not_json") == 1.0 and _loss(gateway) == 0.75
    assert f'"where": "{events}:2", "reason": "not_json"' in done.stderr

    # another run id given: r1's events are skipped, its run_end too, so it runs on until stopped
    log = tmp_path / "other.log"
    proc = _exporter(events, gateway.url, log, "--grouping", "run_id=other", "--interval", "0.2")
    try:
        wait_for(
            lambda: _skipped(gateway, "other_run", run_id="other") == 3.0, 30, "r1's 3 events skipped as other_run"
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    assert _loss(gateway, run_id="other") is None  # nothing of r1 mixed in
    assert "Traceback" not in log.read_text()
    assert "run_id 'r1' differs from the exporter's run_id 'other'" in log.read_text()


def _finished_run(events: Path) -> None:
    """A run's whole event file, as rank 0 leaves it on the shared run volume: a loss, then the run's end."""
    with EventWriter(events, run_id="r1") as writer:
        TelemetrySink(writer).log_dict("train", 25, {"epoch": 0, "loss": 0.75})


def test_replica_index_other_than_0_pushes_nothing_and_exits_0_on_sigterm(gateway: Server, tmp_path: Path) -> None:
    """A TrainJob runs the sidecar in every node pod; node 1 sees rank 0's events on the shared run volume but must
    not push them again. As a native sidecar it must not exit either (the kubelet would restart it): it idles
    until the kubelet's SIGTERM."""
    events, log = tmp_path / "events.jsonl", tmp_path / "exporter.log"
    _finished_run(events)
    proc = _exporter(events, gateway.url, log, "--interval", "0.2", "--no-exit-on-end", "--replica-index", "1")
    try:
        wait_for(lambda: b'"event": "idle"' in log.read_bytes(), 20, "the exporter to say it idles")
        time.sleep(1.0)  # five push intervals: a node-0 exporter has pushed by now
        assert proc.poll() is None, "an idle native sidecar must wait for SIGTERM"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    assert pushgateway_groups(gateway) == []
    assert '"reason": "stop requested", "pushed": false' in log.read_text()


def test_replica_index_other_than_0_exits_at_once_as_a_plain_container(gateway: Server, tmp_path: Path) -> None:
    """Without --no-exit-on-end (a plain second container) an idle exporter would keep its pod from completing."""
    events = tmp_path / "events.jsonl"
    _finished_run(events)
    done = _run_exporter(events, gateway.url, "--interval", "0.2", "--replica-index", "2")
    assert done.returncode == 0, done.stderr
    assert '"replica_index": 2' in done.stderr and pushgateway_groups(gateway) == []


def test_replica_index_0_follows_and_pushes_as_without_it(gateway: Server, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    _finished_run(events)
    done = _run_exporter(events, gateway.url, "--interval", "0.2", "--replica-index", "0")
    assert done.returncode == 0, done.stderr
    assert _loss(gateway) == 0.75 and pushed_value(gateway, "atft_run_state", state="succeeded") == 1.0
    assert '"event": "idle"' not in done.stderr


def _skipped(gateway: Server, reason: str, run_id: str = "r1") -> float | None:
    return pushed_value(gateway, "atft_exporter_skipped_lines_total", run_id=run_id, reason=reason)


def _group(gateway: Server, job: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of the group pushed with ``job``, but those of the act of pushing (times, counts)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{gateway.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    pushing = {"push_time_seconds", "push_failure_time_seconds", "atft_exporter_pushes_total"}
    return {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("job", "instance")))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("job") == job and s.name not in pushing
    }


def test_a_restarted_exporter_over_a_hostile_file_pushes_what_the_good_lines_give(
    gateway: Server, tmp_path: Path
) -> None:
    """The file holds every line of exporter/hostile.py between the lines of a run. The exporter runs over it to
    the run's end, and again from the start, as a restarted pod's does: neither run crashes, the second pushes
    the same counts as the first (each bad line once, not twice), and every series but the skip counter is what
    an exporter over the good lines alone pushes."""
    benign, hostile = tmp_path / "benign.jsonl", tmp_path / "hostile.jsonl"
    write_run(benign)
    expected = spoil(benign, hostile)
    done = _run_exporter(benign, gateway.url, "--job", "benign")
    assert done.returncode == 0, done.stderr
    good = _group(gateway, "benign")
    pushed = []
    for _ in range(2):
        _delete(gateway, "hostile")  # what is there after a run is that run's push
        done = _run_exporter(hostile, gateway.url, "--job", "hostile")
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
        pushed.append(_group(gateway, "hostile"))
    assert pushed[0] == pushed[1]
    skipped = {dict(labels)["reason"]: v for (name, labels), v in pushed[1].items() if name == SKIPPED}
    assert skipped == expected
    assert {k: v for k, v in pushed[1].items() if k[0] != SKIPPED} == {k: v for k, v in good.items() if k[0] != SKIPPED}
    assert pushed_value(gateway, "atft_run_state", job="hostile", state="succeeded") == 1.0


def _delete(gateway: Server, job: str) -> None:
    path = f"/metrics/job/{job}/namespace/ml/replica_type/master/replica_index/0/run_id/r1"
    urllib.request.urlopen(urllib.request.Request(gateway.url + path, method="DELETE"), timeout=5).close()
    deadline = time.monotonic() + 10  # the Pushgateway applies a DELETE from its write queue, not before it answers
    while _group(gateway, job) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _group(gateway, job) == {}


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
