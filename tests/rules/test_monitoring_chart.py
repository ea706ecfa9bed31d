"""The chart's monitoring objects: PrometheusRule scoped to the release, the dashboard ConfigMap for Grafana's
sidecar, the optional ServiceMonitor/PodMonitor; each valid against the real CRD schemas (tests/data/schemas)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from k8s_schemas import CRD_DIR, crd_errors, load_crd_validators

from atft_cli.render import CHART_DIR, REPO_ROOT, ChartError, find_helm, render_manifests

pytestmark = pytest.mark.integration

RELEASE, NAMESPACE = "rel", "ml"
DASHBOARD = CHART_DIR / "files" / "dashboards" / "atft-training.json"


@pytest.fixture(scope="module")
def validators() -> dict[tuple[str, str], Any]:
    return load_crd_validators(CRD_DIR)


def _render(*sets: str) -> dict[str, list[dict[str, Any]]]:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in render_manifests(None, sets=sets, name=RELEASE, namespace=NAMESPACE):
        by_kind.setdefault(obj["kind"], []).append(obj)
    return by_kind


def test_defaults_ship_the_rule_and_the_dashboard_but_no_monitors(validators: dict[tuple[str, str], Any]) -> None:
    objs = _render()
    (rule,) = objs["PrometheusRule"]
    assert crd_errors(rule, validators) == []
    assert "ServiceMonitor" not in objs and "PodMonitor" not in objs
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    for expr in exprs:  # every selector is scoped to this release's pushes
        names = re.findall(r"\b(atft_[a-z0-9_]+|push_time_seconds)\b", expr)
        scoped = re.findall(r'\b(?:atft_[a-z0-9_]+|push_time_seconds)\{job="rel",namespace="ml"[,}]', expr)
        assert names and len(scoped) == len(names), expr
    dashboards = [o for o in objs["ConfigMap"] if o["metadata"]["name"] == f"{RELEASE}-dashboard"]
    (dashboard,) = dashboards
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"] == {"atft-training.json": DASHBOARD.read_text()}
    kubernetes_validate.validate(dashboard, "1.30.0", strict=True)


def test_dashboard_settings_and_switches() -> None:
    objs = _render(
        "monitoring.dashboard.label=dashboards",
        "monitoring.dashboard.labelValue=atft",
        "monitoring.dashboard.namespace=grafana",
        "monitoring.dashboard.folder=Training",
        "monitoring.prometheusRule.labels.release=kube-prometheus-stack",
    )
    (dashboard,) = [o for o in objs["ConfigMap"] if o["metadata"]["name"] == f"{RELEASE}-dashboard"]
    meta = dashboard["metadata"]
    assert meta["namespace"] == "grafana" and meta["labels"]["dashboards"] == "atft"
    assert meta["annotations"] == {"grafana_folder": "Training"}
    assert objs["PrometheusRule"][0]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    off = _render("monitoring.dashboard.enabled=false", "monitoring.prometheusRule.enabled=false")
    assert "PrometheusRule" not in off
    assert all(o["metadata"]["name"] != f"{RELEASE}-dashboard" for o in off.get("ConfigMap", []))


def test_dashboard_is_grafana_json_with_variables_and_a_query_per_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "atft-training"
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names == ["datasource", "namespace", "job", "run_id"]
    titles = [p["title"] for p in dashboard["panels"]]
    assert len(set(titles)) == len(titles)
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:  # every query is filtered by the three variables
            assert all(f'=~"${v}"' in target["expr"] for v in ("namespace", "job", "run_id")), target["expr"]
    wanted = ("Gradient L2 norm", "resets", "dispersion", "Losses", "RankIC", "Step rate")
    assert all(any(w in t for t in titles) for w in wanted), titles


def test_service_and_pod_monitors_scrape_with_the_pushed_labels(validators: dict[tuple[str, str], Any]) -> None:
    objs = _render("monitoring.serviceMonitor.enabled=true", "monitoring.podMonitor.enabled=true")
    (service,) = objs["ServiceMonitor"]
    (pod,) = objs["PodMonitor"]
    assert crd_errors(service, validators) == [] and crd_errors(pod, validators) == []
    assert service["spec"]["endpoints"] == [{"port": "http", "interval": "30s", "honorLabels": True}]
    assert service["spec"]["namespaceSelector"] == {"matchNames": ["monitoring"]}
    assert pod["spec"]["podMetricsEndpoints"][0]["honorLabels"] is True
    assert pod["spec"]["selector"]["matchLabels"]["training.kubeflow.org/replica-type"] == "master"
    assert pod["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == RELEASE


def test_pod_monitor_without_exporter_is_refused_with_a_sentence() -> None:
    with pytest.raises(ChartError, match=r"monitoring.podMonitor.enabled: needs exporter.enabled"):
        _render("monitoring.podMonitor.enabled=true", "exporter.enabled=false")


def test_a_threshold_edited_out_of_the_rule_file_fails_the_render(tmp_path: Path) -> None:
    """The template replaces the file's default thresholds by text; if the text is gone it says so."""
    chart = tmp_path / "atft"
    shutil.copytree(CHART_DIR, chart)
    alerts = chart / "files" / "alerts.yaml"
    alerts.write_text(alerts.read_text().replace("atft_step_advanced_timestamp_seconds > 1800", "x > 1799"))
    done = subprocess.run(
        [
            str(find_helm()),
            "template",
            "rel",
            str(chart),
            "--set-file",
            f"config={REPO_ROOT / 'configs' / 'demo.yaml'}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert 'files/alerts.yaml: alert ATFTTrainingStalled: expr has no "> 1800" to replace' in done.stderr
