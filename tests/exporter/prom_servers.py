"""The real Prometheus servers (Debian packages) on 127.0.0.1 for tests: free ports, temporary storage.

Installed by ``scripts/install_prometheus.sh`` (``.ci/run`` runs it). A missing binary fails the test with
that instruction instead of skipping it: these tests are the proof that the alert path works.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

INSTALL = "scripts/install_prometheus.sh"
T = TypeVar("T")


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: run {INSTALL} (Debian's prometheus, pushgateway, alertmanager)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, every: float = 0.2) -> T:
    """Poll ``probe`` until it returns something other than None/False; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            if result := probe():
                return result
        except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
            last_error = f" (last error: {exc})"
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{last_error}")


class Server:
    """One server process; :meth:`start` waits for its ``/-/ready``; :meth:`stop` always reaps it."""

    def __init__(self, name: str, args: Sequence[str], port: int, log: Path) -> None:
        self.name, self.args, self.port, self.log = name, list(args), port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Server:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([binary(self.name), *self.args], stdout=log, stderr=subprocess.STDOUT)

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200

        wait_for(ready, timeout, f"{self.name} on port {self.port}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def pushgateway(tmp: Path, port: int | None = None) -> Server:
    """A Pushgateway keeping its groups in memory only (Debian's default persists them in /var/lib)."""
    port = port or free_port()
    args = [f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="]
    return Server("prometheus-pushgateway", args, port, tmp / "pushgateway.log")


def alertmanager(tmp: Path) -> Server:
    port = free_port()
    config = tmp / "alertmanager.yml"
    route = {"receiver": "null", "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"}
    config.write_text(yaml.safe_dump({"route": route, "receivers": [{"name": "null"}]}))
    args = [
        f"--config.file={config}",
        f"--storage.path={tmp / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip: one instance, no port beyond the API
    ]
    return Server("prometheus-alertmanager", args, port, tmp / "alertmanager.log")


def prometheus(tmp: Path, rule_files: Sequence[Path], pushgateway_port: int, alertmanager_port: int) -> Server:
    """Prometheus scraping the Pushgateway every second (honor_labels, as for any Pushgateway) and evaluating
    the rules every second, sending alerts to the Alertmanager."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": "pushgateway",
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{pushgateway_port}"]}],
            }
        ],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
    }
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    args = [
        f"--config.file={path}",
        f"--storage.tsdb.path={tmp / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--rules.alert.resend-delay=1s",
    ]
    return Server("prometheus", args, port, tmp / "prometheus.log")


def pushgateway_groups(gateway: Server) -> list[dict[str, Any]]:
    """The Pushgateway's groups as its API lists them (labels and metric families)."""
    return list(http_json(f"{gateway.url}/api/v1/metrics")["data"])


def pushed_value(gateway: Server, metric: str, **labels: str) -> float | None:
    """The value of ``metric`` with ``labels`` in the Pushgateway's exposition, or None."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{gateway.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None
