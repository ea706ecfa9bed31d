"""The alert path end to end with the real servers on 127.0.0.1: a tiny training run and the `atft exporter`
sidecar (two processes, as in the pod) -> Pushgateway -> Prometheus (the chart's PrometheusRule, with `for:`
windows shortened through the chart values) -> Alertmanager; and every dashboard panel's query evaluated
against that Prometheus.

Scenarios (module fixtures, each run once; the tests assert what they observed):
* the dead-encoder fire drill: ATFTVanishingGradient reaches `firing` in Prometheus and arrives in
  Alertmanager, naming the four dead components;
* a healthy run: Prometheus has its metrics and no alert of the run, not even pending;
* the Pushgateway stopped mid-run: the training still finishes, the exporter retries, and after the
  Pushgateway restarts the run's final metrics reach Prometheus.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from exporter.prom_servers import (
    Server,
    alertmanager,
    http_json,
    prometheus,
    pushed_value,
    pushgateway,
    wait_for,
)
from processes import CLI, child_env, start_train

from atft_cli.render import CHART_DIR, render_manifests

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "configs" / "debug.yaml"
RELEASE = NAMESPACE = "e2e"
DEAD = {"market_context", "variable_selection", "input_projection", "temporal_encoder"}
ALERT_KEYS = (
    "vanishingGradient",
    "degeneracyResets",
    "predictionsCollapsed",
    "nonFinite",
    "noLearningSignal",
    "weakLearningSignal",
    "trainingStalled",
    "exporterNotPushing",
    "runFailed",
)


@dataclass
class Stack:
    tmp: Path
    panel: Path
    gateway: Server
    alerts: Server
    prom: Server
    started: float


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, debug_panel: Path) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("alert-path")
    # the chart's PrometheusRule for release e2e, with 2 s `for:` windows set through the chart values
    sets = [f"monitoring.prometheusRule.alerts.{key}.for=2s" for key in ALERT_KEYS]
    objs = render_manifests(None, sets=sets, name=RELEASE, namespace=NAMESPACE)
    (rule,) = [o for o in objs if o["kind"] == "PrometheusRule"]
    rules = tmp / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    servers: list[Server] = []
    try:
        gateway = pushgateway(tmp).start()
        servers.append(gateway)
        alerts = alertmanager(tmp).start()
        servers.append(alerts)
        prom = prometheus(tmp, [rules], gateway.port, alerts.port).start()
        servers.append(prom)
        yield Stack(tmp, debug_panel, gateway, alerts, prom, time.time())
    finally:
        for server in reversed(servers):
            server.stop()


def _train(stack: Stack, run_id: str, *sets: str) -> subprocess.Popen[str]:
    args = ["--config", str(DEBUG), "--data", str(stack.panel), "--out", str(stack.tmp / run_id)]
    for item in sets:
        args += ["--set", item]
    with open(stack.tmp / f"{run_id}.train.log", "wb") as log:
        return start_train(*args, stdout=log, stderr=log)


def _exporter(stack: Stack, run_id: str, *extra: str) -> subprocess.Popen[bytes]:
    args = ["--events", str(stack.tmp / run_id / "events.jsonl"), "--pushgateway", stack.gateway.url]
    args += ["--interval", "0.5", "--job", RELEASE, "--grouping", f"namespace={NAMESPACE}"]
    args += ["--grouping", "replica_type=master", "--grouping", "replica_index=0", *extra]
    with open(stack.tmp / f"{run_id}.exporter.log", "wb") as log:
        return subprocess.Popen([sys.executable, *CLI, "exporter", *args], env=child_env(), stdout=log, stderr=log)


def _finish(proc: subprocess.Popen[Any], log: Path, timeout: float = 240) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{log.name} did not finish in {timeout:.0f}s: {log.read_text()[-2000:]}")


def query(prom: Server, expr: str) -> list[dict[str, Any]]:
    url = f"{prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    return list(http_json(url)["data"]["result"])


def query_range(prom: Server, expr: str, start: float, end: float) -> dict[str, Any]:
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "1"}
    return dict(http_json(f"{prom.url}/api/v1/query_range?" + urllib.parse.urlencode(params)))


def _prom_alerts(prom: Server, name: str, run_id: str) -> list[dict[str, Any]]:
    alerts = http_json(f"{prom.url}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == name and a["labels"].get("run_id") == run_id]


def _am_alerts(am: Server, name: str, run_id: str) -> list[dict[str, Any]]:
    filters = [f'alertname="{name}"', f'run_id="{run_id}"']
    url = f"{am.url}/api/v2/alerts?" + urllib.parse.urlencode([("filter", f) for f in filters])
    return list(http_json(url))


@dataclass
class Observed:
    train_rc: int | None
    exporter_rc: int
    firing: list[dict[str, Any]]
    received: list[dict[str, Any]]


@pytest.fixture(scope="module")
def dead_run(stack: Stack) -> Observed:
    """The dead-encoder drill, given more epochs than it needs: once the page has arrived, the pod goes away as
    when an operator deletes it (the training is killed, the exporter gets SIGTERM). So the alert goes through
    its `for:` window while the run is surely running, however fast this machine trains."""
    train = _train(stack, "dead", "faults.dead_encoder=true", "train.epochs=50")
    sidecar = _exporter(stack, "dead")

    def firing() -> list[dict[str, Any]] | None:
        found = [a for a in _prom_alerts(stack.prom, "ATFTVanishingGradient", "dead") if a["state"] == "firing"]
        return found if {a["labels"]["component"] for a in found} >= DEAD else None

    def received() -> list[dict[str, Any]] | None:
        found = _am_alerts(stack.alerts, "ATFTVanishingGradient", "dead")
        return found if {a["labels"]["component"] for a in found} >= DEAD else None

    try:
        seen_firing = wait_for(firing, 180, "ATFTVanishingGradient firing in Prometheus for the 4 dead components")
        seen_received = wait_for(received, 60, "ATFTVanishingGradient in Alertmanager for the 4 dead components")
        train_rc = train.poll()  # None: still training when the page arrived
    finally:
        train.kill()
        train.wait()
        sidecar.send_signal(signal.SIGTERM)
        exporter_rc = _finish(sidecar, stack.tmp / "dead.exporter.log", 60)
    (stack.tmp / "dead.alerts.json").write_text(json.dumps({"firing": seen_firing, "received": seen_received}))
    return Observed(train_rc, exporter_rc, seen_firing, seen_received)


@pytest.fixture(scope="module")
def healthy_run(stack: Stack) -> tuple[Observed, float, float]:
    start = time.time()
    train = _train(stack, "healthy", "train.epochs=2")
    sidecar = _exporter(stack, "healthy")
    train_rc = _finish(train, stack.tmp / "healthy.train.log")
    exporter_rc = _finish(sidecar, stack.tmp / "healthy.exporter.log", 60)
    done = 'atft_run_state{run_id="healthy",state="succeeded"} == 1'
    wait_for(lambda: query(stack.prom, done), 30, "the healthy run's final state in Prometheus")
    time.sleep(4)  # more rule evaluations (1 s apart) than any `for:` window (2 s) after the last sample
    return Observed(train_rc, exporter_rc, [], []), start, time.time()


def test_vanishing_gradient_fires_in_prometheus_and_reaches_alertmanager(stack: Stack, dead_run: Observed) -> None:
    assert dead_run.train_rc is None  # the page arrived while the run was training (action=warn: it goes on)
    assert dead_run.exporter_rc == 0  # SIGTERM: final push, exit 0
    events = [json.loads(line) for line in (stack.tmp / "dead" / "events.jsonl").read_text().splitlines()]
    first = next(e for e in events if e["name"] == "vanishing_gradient")
    assert first["step"] == 1 and first["component"] in DEAD
    firing = {a["labels"]["component"]: a for a in dead_run.firing}
    assert set(firing) >= DEAD
    assert "graph_block" not in firing  # only the dead components
    alert = firing["temporal_encoder"]
    assert alert["labels"]["job"] == RELEASE and alert["labels"]["namespace"] == NAMESPACE
    assert alert["labels"]["severity"] == "critical"
    assert "temporal_encoder" in alert["annotations"]["description"]
    received = {a["labels"]["component"]: a for a in dead_run.received}
    assert set(received) >= DEAD
    assert received["market_context"]["annotations"]["runbook_url"].endswith("/vanishing-gradient.md")
    assert received["market_context"]["status"]["state"] == "active"


def test_healthy_run_raises_no_alert(stack: Stack, healthy_run: tuple[Observed, float, float]) -> None:
    observed, start, end = healthy_run
    assert observed.train_rc == 0 and observed.exporter_rc == 0
    steps = query(stack.prom, 'atft_step{run_id="healthy"}')
    assert steps and float(steps[0]["value"][1]) > 0  # the run's metrics did arrive
    alerts = query_range(stack.prom, 'ALERTS{run_id="healthy"}', start, end)  # pending ones included
    assert alerts["status"] == "success" and alerts["data"]["result"] == []
    assert _am_alerts(stack.alerts, "ATFTVanishingGradient", "healthy") == []


def test_pushgateway_outage_does_not_stop_training_and_metrics_arrive_after_restart(stack: Stack) -> None:
    train = _train(stack, "outage", "train.epochs=2")
    sidecar = _exporter(stack, "outage", "--max-backoff", "1", "--final-timeout", "120")
    log = stack.tmp / "outage.exporter.log"
    try:
        wait_for(lambda: pushed_value(stack.gateway, "atft_step", run_id="outage") is not None, 120, "a first push")
        stack.gateway.stop()
        assert _finish(train, stack.tmp / "outage.train.log") == 0  # the training does not notice
        events = [json.loads(line) for line in (stack.tmp / "outage" / "events.jsonl").read_text().splitlines()]
        assert events[-1]["name"] == "run_end" and events[-1]["message"] == "status=ok"
        wait_for(lambda: "push_failed" in log.read_text(), 30, "the exporter's failed pushes")
        assert sidecar.poll() is None  # still retrying its final push
        stack.gateway.start()
        assert _finish(sidecar, log, 150) == 0
    finally:
        train.kill()
        sidecar.kill()
    final = f'atft_step{{run_id="outage"}} == {events[-1]["step"]}'
    wait_for(lambda: query(stack.prom, final), 30, "the run's last step in Prometheus after the restart")
    succeeded = query(stack.prom, 'atft_run_state{run_id="outage",state="succeeded"}')
    assert [float(s["value"][1]) for s in succeeded] == [1.0]
    failures = query(stack.prom, 'atft_exporter_push_failures_total{run_id="outage"}')
    assert failures and float(failures[0]["value"][1]) >= 1
    assert "push_recovered" in log.read_text()


def test_every_dashboard_panel_query_parses_and_returns_data(
    stack: Stack, dead_run: Observed, healthy_run: tuple[Observed, float, float]
) -> None:
    dashboard = json.loads((CHART_DIR / "files" / "dashboards" / "atft-training.json").read_text())
    variables = {"$namespace": NAMESPACE, "$job": RELEASE, "$run_id": ".*", "$__rate_interval": "5s"}
    targets = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p["targets"]]
    assert len(targets) >= 10
    end = time.time()
    for title, expr in targets:
        for name, value in variables.items():
            expr = expr.replace(name, value)
        assert "$" not in expr, (title, expr)
        answer = query_range(stack.prom, expr, stack.started, end)
        assert answer["status"] == "success", (title, expr, answer)
        values = [float(v) for series in answer["data"]["result"] for _, v in series["values"]]
        assert any(v == v for v in values), f"panel {title!r}: no data for {expr}"  # v == v: not NaN
