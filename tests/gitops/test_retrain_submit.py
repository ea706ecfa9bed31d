"""The retrain CronJob's command line, run through the real `atft submit --dry-run`, and the Role it runs under.

The pod's arguments are taken from the built CronJob, with what Kubernetes would substitute ($(JOB_NAME),
$(NAMESPACE)) and the mounted values file replaced by the ConfigMap's content: if the CLI refused them, or the
render needed a permission the Role lacks, the nightly job would fail at 02:00 instead of here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from gitops_helpers import OVERLAYS, Objects, atft, by_kind

pytestmark = pytest.mark.integration

JOB_NAME = "atft-retrain-29412345"  # what the CronJob controller names a Job: <cronjob>-<minutes since epoch>
# The plural of each kind the chart can render (kubectl's resource names, no discovery).
RESOURCES = {
    "ConfigMap": ("", "configmaps"),
    "ServiceAccount": ("", "serviceaccounts"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
    "PrometheusRule": ("monitoring.coreos.com", "prometheusrules"),
    "ServiceMonitor": ("monitoring.coreos.com", "servicemonitors"),
    "PodMonitor": ("monitoring.coreos.com", "podmonitors"),
    "PyTorchJob": ("kubeflow.org", "pytorchjobs"),
    "TrainJob": ("trainer.kubeflow.org", "trainjobs"),
    "TrainingRuntime": ("trainer.kubeflow.org", "trainingruntimes"),
}
JOB_VERBS = {"create", "get", "list", "watch", "delete"}  # submit, follow (wait, --validation lists) and delete


def dry_run(objs: Objects, tmp_path: Path) -> tuple[list[dict[str, Any]], str]:
    """Run the CronJob's own arguments plus --dry-run; returns the manifests it would create and its stderr."""
    (cron,) = by_kind(objs, "CronJob")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = [c for c in [*pod.get("initContainers", []), *pod["containers"]] if c["args"][0] == "submit"]
    values_mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "values")
    values_cm = next(v for v in pod["volumes"] if v["name"] == "values")["configMap"]["name"]
    (data,) = [o["data"] for o in by_kind(objs, "ConfigMap") if o["metadata"]["name"] == values_cm]
    for key, text in data.items():
        (tmp_path / key).write_text(text)
    namespace = cron["metadata"]["namespace"]
    args = [
        a.replace("$(JOB_NAME)", JOB_NAME).replace("$(NAMESPACE)", namespace).replace(values_mount, str(tmp_path))
        for a in container["args"]
    ]
    assert container["workingDir"] == "/opt/atft", "the image's configs/ sit there; the checkout's here"
    done = atft(*args, "--dry-run")
    assert done.returncode == 0, done.stderr
    return [o for o in yaml.safe_load_all(done.stdout) if o], done.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cronjob_command_submits_the_overlay_job_and_the_role_covers_exactly_that(
    overlay: str, built: dict[str, Objects], tmp_path: Path
) -> None:
    objs = built[overlay]
    created, stderr = dry_run(objs, tmp_path)
    namespace = f"atft-{overlay}"
    jobs = [o for o in created if o["kind"] in ("PyTorchJob", "TrainJob")]
    # the retrain: one job named after the CronJob's Job; the walk-forward: one per fold, NAME-fKK-s0
    names = [JOB_NAME] if len(jobs) == 1 else [f"{JOB_NAME}-f{k:02d}-s0" for k in range(len(jobs))]
    assert [(j["metadata"]["name"], j["metadata"]["namespace"]) for j in jobs] == [(n, namespace) for n in names]
    assert all(f"would create {j['kind']} {namespace}/{j['metadata']['name']}" in stderr for j in jobs)
    # The training pods use the base's token-less ServiceAccount, so the Role never creates ServiceAccounts.
    accounts = {a["metadata"]["name"]: a for a in by_kind(objs, "ServiceAccount")}
    runtimes = {o["metadata"]["name"]: o for o in created if o["kind"] == "TrainingRuntime"}
    for job in jobs:
        if job["kind"] == "PyTorchJob":
            pod = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
        else:  # the chart's own runtime, created beside each TrainJob, holds the pod template
            (node,) = runtimes[job["metadata"]["name"]]["spec"]["template"]["spec"]["replicatedJobs"]
            pod = node["template"]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] in accounts and pod["automountServiceAccountToken"] is False
    (role,) = by_kind(objs, "Role")
    granted = {
        (g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    for kind in {o["kind"] for o in created}:
        assert "create" in granted.get(RESOURCES[kind], set()), f"the Role cannot create the {kind} submit sends"
    for job in jobs:
        assert granted[RESOURCES[job["kind"]]] == JOB_VERBS


def test_role_grants_nothing_the_overlays_do_not_use(built: dict[str, Objects], tmp_path: Path) -> None:
    """Least privilege: every (group, resource) the Role grants is used by some overlay's submit, and the only
    verb besides the job's own is create (no get/list of ConfigMaps: they may hold others' data)."""
    used: set[tuple[str, str]] = set()
    for overlay in OVERLAYS:
        (tmp_path / overlay).mkdir()
        created, _ = dry_run(built[overlay], tmp_path / overlay)
        used |= {RESOURCES[o["kind"]] for o in created}
    (role,) = by_kind(built[OVERLAYS[0]], "Role")
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) in used, f"the Role grants {group}/{resource}, which no overlay creates"
                if resource not in ("pytorchjobs", "trainjobs"):
                    assert rule["verbs"] == ["create"], f"{resource}: {rule['verbs']}"
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]


def test_cronjob_kubeconfig_loads_in_atft_backend(built: dict[str, Objects], tmp_path: Path) -> None:
    """The pod's kubeconfig, read by atft's own JobBackend (no API call): the in-cluster server, the projected
    token as a bearer token. The token and CA are planted under tmp_path where the pod has its projected volume."""
    from atft_cli.backends import PyTorchJobBackend

    objs = built["prod"]
    (cron,) = by_kind(objs, "CronJob")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    token_dir = next(m["mountPath"] for m in pod["containers"][0]["volumeMounts"] if m["name"] == "api-token")
    name = next(v for v in pod["volumes"] if v["name"] == "kubeconfig")["configMap"]["name"]
    ((key, text),) = next(o for o in by_kind(objs, "ConfigMap") if o["metadata"]["name"] == name)["data"].items()
    (tmp_path / "token").write_text("projected-token")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    kubeconfig = tmp_path / key
    kubeconfig.write_text(text.replace(token_dir, str(tmp_path)))
    backend = PyTorchJobBackend(kubeconfig=str(kubeconfig), namespace="atft-prod")
    assert backend.api.configuration.host == "https://kubernetes.default.svc"
    assert backend.api.configuration.api_key["authorization"] == "Bearer projected-token"
    assert backend.api.configuration.ssl_ca_cert == str(tmp_path / "ca.crt")


def test_chart_comes_from_atft_chart_where_the_image_sets_it(built: dict[str, Objects], tmp_path: Path) -> None:
    """Installed without the source tree (the image), atft finds the chart through ATFT_CHART, the variable the
    CronJob sets; a wrong path is one named error (exit 2), never a fallback to some other chart."""
    import shutil

    from atft_cli.render import CHART_DIR

    (cron,) = by_kind(built["dev"], "CronJob")
    env = {
        e["name"]: e.get("value")
        for e in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["ATFT_CHART"].endswith("/helm/atft")
    chart = tmp_path / "helm" / "atft"
    shutil.copytree(CHART_DIR, chart)
    meta = chart / "Chart.yaml"  # a copy that renders differently: the image tag defaults to appVersion
    meta.write_text(meta.read_text().replace('appVersion: "0.1.0"', 'appVersion: "9.9.9"'))
    args = ("render", "--config", "configs/debug.yaml", "--name", "from-env", "-n", "atft-dev")
    here, there = atft(*args), atft(*args, env={"ATFT_CHART": str(chart)})
    assert here.returncode == 0 and there.returncode == 0, there.stderr
    assert "image: ghcr.io/atft/atft:9.9.9" in there.stdout and "9.9.9" not in here.stdout
    assert there.stdout.replace("9.9.9", "0.1.0") == here.stdout, "the same chart otherwise"
    wrong = atft(*args, env={"ATFT_CHART": str(tmp_path / "nowhere")})
    assert wrong.returncode == 2, wrong.stderr
    (line,) = wrong.stderr.splitlines()[:1]
    assert line.startswith("error: chart ") and "no Chart.yaml" in line and "Traceback" not in wrong.stderr
