"""Every chart scenario (helm/atft/ci/*-values.yaml) through the real Helm engine: lint, render, validate.

Core kinds go through ``kubernetes-validate --strict`` (the upstream OpenAPI schemas), CRD kinds through their
CRD schemas stored in tests/data/schemas with strict field checks; each PyTorchJob pod template is also validated as a
core ``Pod``, which checks every container, volume and security field the CRD schema only passes through. What
the PyTorchJob CRD leaves to the operator's webhook (replica types, Master replicas, container name,
restartPolicy values) is asserted here.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from pathlib import Path

import kubernetes_validate
import pytest
from chart_helpers import PROD, SCENARIOS, Objects, containers, one, pod_specs
from k8s_schemas import crd_errors

from atft_cli.render import CHART_DIR

pytestmark = pytest.mark.integration
KUBE_VERSION = "1.33"  # a current cluster; native sidecars need 1.29+
OLD_KUBE = "1.27"  # before sidecar containers (alpha in 1.28): exporter.nativeSidecar=false must validate here
CRD_GROUPS = ("kubeflow.org/", "monitoring.coreos.com/")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict(helm: Path, scenario: str) -> None:
    values = ["-f", str(CHART_DIR / "ci" / scenario), "--set-file", f"config={PROD}"]
    done = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART_DIR), *values],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def _validate_core(obj: dict, version: str) -> None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} invalid for Kubernetes {version}: {exc.message}")


def _as_pod(job: dict, rtype: str) -> dict:
    template = job["spec"]["pytorchReplicaSpecs"][rtype]["template"]
    meta = {"name": f"{job['metadata']['name']}-{rtype.lower()}-0", "namespace": job["metadata"]["namespace"]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {**template["metadata"], **meta}, "spec": template["spec"]}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_objects_are_valid(render: Callable[..., Objects], crd_validators: dict, scenario: str) -> None:
    objs = render(values=(CHART_DIR / "ci" / scenario,))
    kinds = [o["kind"] for o in objs]
    assert {"PyTorchJob", "ConfigMap"} <= set(kinds), kinds
    for obj in objs:
        meta, what = obj["metadata"], f"{obj['kind']}/{obj['metadata']['name']}"
        assert meta.get("namespace"), f"{what}: no namespace (kubectl apply would use the context's)"
        assert meta["labels"]["app.kubernetes.io/instance"] == "atft-test", f"{what}: not labelled by atft.labels"
        if obj["apiVersion"].startswith(CRD_GROUPS):
            assert crd_errors(obj, crd_validators) == [], f"{obj['kind']} in {scenario}"
        else:
            _validate_core(obj, KUBE_VERSION)
    job = one(objs, "PyTorchJob")
    native = any(pod.get("initContainers") for _, pod in pod_specs(objs))
    for rtype in job["spec"]["pytorchReplicaSpecs"]:
        _validate_core(_as_pod(job, rtype), KUBE_VERSION)
        if not native:
            _validate_core(_as_pod(job, rtype), OLD_KUBE)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_job_passes_operator_rules(render: Callable[..., Objects], scenario: str) -> None:
    """What training-operator v1's webhook checks and the CRD schema does not."""
    objs = render(values=(CHART_DIR / "ci" / scenario,))
    job = one(objs, "PyTorchJob")
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert set(specs) <= {"Master", "Worker"} and specs["Master"]["replicas"] == 1
    assert job["spec"]["runPolicy"]["cleanPodPolicy"] in {"None", "Running", "All"}
    if "elasticPolicy" in job["spec"]:
        assert specs["Worker"]["replicas"] >= 1
    for rtype, pod in pod_specs(objs):
        assert specs[rtype]["restartPolicy"] == "ExitCode"
        assert pod["containers"][0]["name"] == "pytorch", "the operator finds the training container by this name"
        assert int(job["spec"]["nprocPerNode"]) == max(1, _gpus(pod["containers"][0]))
        names = {v["name"] for v in pod["volumes"]}
        for c in containers(pod).values():
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            assert mounts <= names, f"{rtype}/{c['name']} mounts a volume the pod lacks"


def _gpus(container: dict) -> int:
    return int(container["resources"].get("limits", {}).get("nvidia.com/gpu", 0))


def test_config_is_required_by_the_schema(helm: Path) -> None:
    """Helm users without atft get the same rule: no config, no manifests."""
    done = subprocess.run([str(helm), "template", "x", str(CHART_DIR)], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "missing property 'config'" in done.stderr, done.stderr
    empty = subprocess.run(
        [str(helm), "template", "x", str(CHART_DIR), "--set", "config="], capture_output=True, text=True, check=False
    )
    assert empty.returncode != 0 and "/config" in empty.stderr, empty.stderr


def test_plain_sidecar_is_valid_before_native_sidecars_and_native_is_not(render: Callable[..., Objects]) -> None:
    """The switch exists for old clusters: prove the plain layout fits their API and the native one does not."""
    plain = _as_pod(one(render("exporter.nativeSidecar=false"), "PyTorchJob"), "Master")
    _validate_core(plain, OLD_KUBE)
    native = _as_pod(one(render(), "PyTorchJob"), "Master")
    with pytest.raises(kubernetes_validate.ValidationError, match="'restartPolicy' was unexpected"):
        kubernetes_validate.validate(native, OLD_KUBE, strict=True)


@pytest.mark.parametrize("exporter", ["true", "false"])
def test_notes_give_the_next_commands(helm: Path, exporter: str) -> None:
    """NOTES.txt (what `helm install` prints) names this job and namespace in every next command."""
    args = ["--set-file", f"config={PROD}", "--set", f"exporter.enabled={exporter}", "--dry-run=client"]
    done = subprocess.run(
        [str(helm), "install", "prod-a", str(CHART_DIR), "-n", "research", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("NOTES:", 1)[1]
    for command in ("atft status", "atft logs", "atft wait", "atft delete"):
        assert f"{command} prod-a -n research" in notes
    assert "--timeout 49h" in notes, "wait a little longer than runPolicy.activeDeadlineSeconds (48 h)"
    assert ("exporter is disabled" in notes) is (exporter == "false")


@pytest.mark.parametrize("enabled", ["true", "false"])
def test_notes_warn_when_the_network_policy_is_off(helm: Path, enabled: str) -> None:
    """Turning the policy off is allowed, but `helm install` then says what that exposes."""
    args = ["--set-file", f"config={PROD}", "--set", f"networkPolicy.enabled={enabled}", "--dry-run=client"]
    done = subprocess.run(
        [str(helm), "install", "open-a", str(CHART_DIR), "-n", "research", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("NOTES:", 1)[1]
    assert ("WARNING: no NetworkPolicy" in notes) is (enabled == "false")
    assert ("kind: NetworkPolicy" in done.stdout) is (enabled == "true")


def test_validation_catches_a_misspelt_field(render: Callable[..., Objects], crd_validators: dict) -> None:
    """Negative control: the same checks reject a rendered job with one typo, in the CRD part and in the pod."""
    job = copy.deepcopy(one(render(), "PyTorchJob"))
    job["spec"]["runPolicy"]["backofLimit"] = 3
    job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    errors = crd_errors(job, crd_validators)
    assert any("'backofLimit' was unexpected" in e for e in errors), errors
    assert any("'imagePullPolicyy' was unexpected" in e for e in errors), errors
    with pytest.raises(kubernetes_validate.ValidationError, match="'imagePullPolicyy' was unexpected"):
        kubernetes_validate.validate(_as_pod(job, "Master"), KUBE_VERSION, strict=True)
