"""``atft submit`` end to end: the real chart through the real helm, the real clients, the fake API server."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cluster_fixtures import JOBS, NS, atft, job_status
from fake_api import DEFAULT_RESOURCES, FakeApiServer

from atft.errors import AtftError
from atft_cli.render import MANAGED_BY, find_helm, hashed_name, managed_by, render_manifests, to_text

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def helm() -> Path:
    try:
        return find_helm()
    except AtftError as exc:
        pytest.fail(f"{exc}\nsubmit renders with helm: run `python3 scripts/fetch_helm.py` (CI does)")


def _as_sent(job: dict[str, Any]) -> dict[str, Any]:
    """The SDK's model types resource quantities as strings: ``8`` goes out as ``"8"``; nothing else changes."""
    out = copy.deepcopy(job)
    for spec in out["spec"]["pytorchReplicaSpecs"].values():
        pod = spec["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            for part in ("limits", "requests"):
                if part in container.get("resources", {}):
                    container["resources"][part] = {k: str(v) for k, v in container["resources"][part].items()}
    return out


def _labels(name: str, manager: str) -> dict[str, str]:
    """The chart's common labels (templates/_helpers.tpl, atft.labels), with ``manager`` as managed-by."""
    return {
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": manager,
        "app.kubernetes.io/name": "atft",
        "app.kubernetes.io/part-of": "atft",
        "app.kubernetes.io/version": "0.1.0",
        "helm.sh/chart": "atft-0.1.0",
    }


def test_dry_run_prints_the_manifests_and_makes_no_api_call(api: FakeApiServer, kubeconfig: Path) -> None:
    result = atft("submit", "--name", "demo", "--dry-run", "--kubeconfig", kubeconfig)
    assert result.returncode == 0, result.stderr
    expected = managed_by(render_manifests(None, [], [], "demo", NS), "atft")  # namespace from the context
    assert result.stdout == to_text(expected)
    assert f"would create PyTorchJob {NS}/demo" in result.stderr
    assert api.requests == []


def test_name_hash_submits_the_job_render_names(api: FakeApiServer, kubeconfig: Path) -> None:
    name = hashed_name(None, [], ["workers=1"], "demo", NS)  # what `atft render --name-hash` names it
    assert name.startswith("demo-") and name != hashed_name(None, [], ["workers=2"], "demo", NS)
    result = atft("submit", "--name", "demo", "--name-hash", "--set", "workers=1", "--kubeconfig", kubeconfig)
    assert result.returncode == 0, result.stderr
    (post,) = api.calls("POST", "pytorchjobs")
    assert post.body["metadata"]["name"] == name


def test_submit_creates_the_rendered_objects_then_a_clash_is_exit_2(
    api: FakeApiServer, kubeconfig: Path, job_schema_errors: Callable[[dict[str, Any]], list[str]]
) -> None:
    sets = ("networkPolicy.enabled=true", "workers=1")
    args = [a for s in sets for a in ("--set", s)]
    result = atft("submit", "--name", "demo", "-n", NS, *args, "--kubeconfig", kubeconfig)
    assert result.returncode == 0, result.stderr
    helm_render = render_manifests(None, [], list(sets), "demo", NS)
    rendered = managed_by(helm_render, "atft")
    posts = api.calls("POST")
    paths = {
        "NetworkPolicy": f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies",
        "ServiceAccount": f"/api/v1/namespaces/{NS}/serviceaccounts",
        "ConfigMap": f"/api/v1/namespaces/{NS}/configmaps",
        "PrometheusRule": f"/apis/monitoring.coreos.com/v1/namespaces/{NS}/prometheusrules",
        "PyTorchJob": f"/apis/kubeflow.org/v1/namespaces/{NS}/pytorchjobs",
    }
    assert {"NetworkPolicy", "ConfigMap", "PyTorchJob"} <= {o["kind"] for o in rendered}
    assert [r.path for r in posts] == [paths[o["kind"]] for o in rendered]
    assert [r.body for r in posts[:-1]] == rendered[:-1]
    assert posts[-1].body == _as_sent(rendered[-1])
    assert job_schema_errors(posts[-1].body) == []
    assert f"atft wait demo -n {NS}" in result.stderr
    # who manages them, truthfully: atft created them (no Helm release exists); `atft render` keeps Helm's label
    extra = {"grafana_dashboard"}  # the dashboard ConfigMap's label for Grafana's sidecar
    for post in posts:
        labels = {k: v for k, v in post.body["metadata"]["labels"].items() if k not in extra}
        assert labels == _labels("demo", "atft"), post.path
    for rtype, spec in posts[-1].body["spec"]["pytorchReplicaSpecs"].items():
        assert spec["template"]["metadata"]["labels"] == {**_labels("demo", "atft"),
                                                          "app.kubernetes.io/component": rtype.lower()}  # fmt: skip
    assert {o["metadata"]["labels"][MANAGED_BY] for o in helm_render} == {"Helm"}

    clash = atft("submit", "--name", "demo", "-n", NS, "--kubeconfig", kubeconfig)
    assert clash.returncode == 2
    assert (
        f"error: PyTorchJob {NS}/demo already exists; `atft delete demo -n {NS}` or pick another --name" in clash.stderr
    )
    assert len(api.calls("POST")) == len(posts)  # nothing more was created


def test_submit_wait_exits_1_when_the_job_fails(api: FakeApiServer, kubeconfig: Path) -> None:
    api.on_watch(JOBS, "pytorchjobs", NS, "demo", [
        job_status("Created"), job_status("Created", "Running", active=1),
        job_status("Created", "Running", "Failed", failed=1, message="OOMKilled"),
    ])  # fmt: skip
    result = atft("submit", "--name", "demo", "--wait", "--timeout", "30s", "--kubeconfig", kubeconfig)
    assert result.returncode == 1, result.stderr
    states = [
        line.split(": ")[1].split(" ")[0] for line in result.stderr.splitlines() if line.startswith(f"{NS}/demo: ")
    ]
    assert states == ["Pending", "Created", "Running", "Failed"]
    assert f"error: PyTorchJob {NS}/demo failed (PyTorchJobFailed: OOMKilled)" in result.stderr
    assert json.loads(json.dumps(api.get(JOBS, "pytorchjobs", NS, "demo")))["metadata"]["name"] == "demo"


def test_a_cluster_without_the_monitoring_crds_is_told_which_value_turns_them_off(kubeconfig: Path) -> None:
    served = {k: v for k, v in DEFAULT_RESOURCES.items() if "monitoring" not in k}
    with FakeApiServer(served) as bare:
        path = bare.kubeconfig(kubeconfig.parent / "bare", namespace=NS)
        refused = atft("submit", "--name", "demo", "--kubeconfig", path)
        assert refused.returncode == 2, refused.stderr
        line = refused.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: cannot create PrometheusRule {NS}/demo: the server could not find")
        created = line.split("(already created: ")[1].split(";")[0].split(", ")  # in the chart's order
        assert f"ServiceAccount {NS}/demo" in created and bare.get(JOBS, "pytorchjobs", NS, "demo") is None
        switch = line.split("submit with ")[1].split("?")[0].split()  # the value the message names
        cleaned = atft("delete", "demo", "--kubeconfig", path)  # what the message says to run: the half-submit goes
        assert cleaned.returncode == 0 and f"deleted ServiceAccount {NS}/demo" in cleaned.stderr, cleaned.stderr
        again = atft("submit", "--name", "demo", *switch, "--kubeconfig", path)
        assert again.returncode == 0, again.stderr
        assert bare.get(JOBS, "pytorchjobs", NS, "demo") is not None


def test_submit_target_trainjob_sends_the_rendered_trainjob_verbatim(
    api: FakeApiServer, kubeconfig: Path, job_schema_errors: Callable[[dict[str, Any]], list[str]]
) -> None:
    sets = ["trainjob.runtime.create=true", "workers=1"]  # the chart's own runtime carries the exporter sidecar
    args = [a for s in sets for a in ("--set", s)]
    dry = atft("submit", "--name", "demo", "--target", "trainjob", *args, "--dry-run", "--kubeconfig", kubeconfig)
    assert dry.returncode == 0, dry.stderr
    assert f"would create TrainingRuntime {NS}/demo" in dry.stderr and f"would create TrainJob {NS}/demo" in dry.stderr
    assert api.requests == []

    result = atft("submit", "--name", "demo", "--target", "trainjob", *args, "--kubeconfig", kubeconfig)
    assert result.returncode == 0, result.stderr
    rendered = managed_by(render_manifests(None, [], [*sets, "target=trainjob"], "demo", NS), "atft")
    posts = api.calls("POST")
    assert [r.body for r in posts] == rendered  # every object as rendered, the TrainJob included: nothing dropped
    assert [o["kind"] for o in rendered][-2:] == ["TrainingRuntime", "TrainJob"]
    assert posts[-1].path == f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainjobs"
    assert job_schema_errors(posts[-1].body) == [] and job_schema_errors(posts[-2].body) == []
    assert posts[-1].body["spec"]["trainer"]["numNodes"] == 2
    assert f"`atft wait demo --target trainjob -n {NS}`" in result.stderr


def test_a_values_file_choosing_trainjob_is_submitted_as_one_and_target_overrides_it(
    api: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    values = tmp_path / "trainer-values.yaml"
    values.write_text("target: trainjob\ntrainjob:\n  runtime:\n    create: true\n")
    chosen = atft("submit", "--name", "by-file", "-f", values, "--kubeconfig", kubeconfig)
    assert chosen.returncode == 0, chosen.stderr
    assert api.calls("POST")[-1].path == f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainjobs"
    assert f"`atft status by-file --target trainjob -n {NS}`" in chosen.stderr  # the next commands name the kind
    overridden = atft("submit", "--name", "by-flag", "-f", values, "--target", "pytorchjob", "--kubeconfig", kubeconfig)
    assert overridden.returncode == 0, overridden.stderr
    assert api.calls("POST")[-1].path == f"/apis/kubeflow.org/v1/namespaces/{NS}/pytorchjobs"
