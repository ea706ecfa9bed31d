"""Every chart scenario (helm/atft/ci/*-values.yaml) through the real Helm engine: lint, render, validate.

Core kinds go through ``kubernetes-validate --strict`` (the upstream OpenAPI schemas), CRD kinds (PyTorchJob,
TrainJob, TrainingRuntime, monitoring) through their CRD schemas stored in tests/data/schemas with strict field
checks. Every pod template is also validated as a core ``Pod``, which checks every container, volume and security
field a CRD schema only passes through: the PyTorchJob's replicas, the TrainingRuntime's node (and its node Job
as a core ``Job``), the pod upstream's runtime and the TrainJob's patch make together, the report Job's. What
the CRDs leave to the operators' webhooks (replica types, Master replicas, container names, restartPolicy
values, Trainer's reserved PET_* variables) is asserted here.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from pathlib import Path

import kubernetes_validate
import pytest
from chart_helpers import PROD, SCENARIOS, Objects, containers, job, one, pod_specs, pod_templates, upstream_pod
from k8s_schemas import crd_errors

from atft_cli.render import CHART_DIR

pytestmark = pytest.mark.integration
KUBE_VERSION = "1.33"  # a current cluster; native sidecars need 1.29+
OLD_KUBE = "1.27"  # before sidecar containers (alpha in 1.28): exporter.nativeSidecar=false must validate here
CRD_GROUPS = ("kubeflow.org/", "trainer.kubeflow.org/", "monitoring.coreos.com/")
TORCHRUN_RESERVED = {"PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT"}


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


def _pods(objs: Objects) -> list[dict]:
    """Every pod the render makes, as a core Pod: each template, and upstream's node pod patched by a TrainJob."""
    namespace = job(objs)["metadata"]["namespace"]
    pods = []
    for where, template in pod_templates(objs):
        if where != "TrainJob/runtimePatches":
            meta = {**template["metadata"], "name": where.replace("/", "-").lower(), "namespace": namespace}
            pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]})
    pods += [upstream_pod(o) for o in objs if o["kind"] == "TrainJob" and "runtimePatches" in o["spec"]]
    return pods


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_objects_are_valid(render: Callable[..., Objects], crd_validators: dict, scenario: str) -> None:
    objs = render(values=(CHART_DIR / "ci" / scenario,))
    kinds = [o["kind"] for o in objs]
    assert "ConfigMap" in kinds and job(objs)["kind"] == kinds[-1], kinds
    for obj in objs:
        meta, what = obj["metadata"], f"{obj['kind']}/{obj['metadata']['name']}"
        assert meta.get("namespace"), f"{what}: no namespace (kubectl apply would use the context's)"
        assert meta["labels"]["app.kubernetes.io/instance"] == "atft-test", f"{what}: not labelled by atft.labels"
        if obj["apiVersion"].startswith(CRD_GROUPS):
            assert crd_errors(obj, crd_validators) == [], f"{obj['kind']} in {scenario}"
        else:
            _validate_core(obj, KUBE_VERSION)
    pods = _pods(objs)
    assert pods, f"{scenario}: no pod template found"
    for pod in pods:
        _validate_core(pod, KUBE_VERSION)
        if not pod["spec"].get("initContainers"):  # no native sidecar: must also fit a cluster from before them
            _validate_core(pod, OLD_KUBE)
    for obj in objs:  # the TrainingRuntime's node Job (podFailurePolicy, backoffLimit) as the Job JobSet creates
        for rjob in obj["spec"]["template"]["spec"]["replicatedJobs"] if obj["kind"] == "TrainingRuntime" else []:
            node_job = {"apiVersion": "batch/v1", "kind": "Job", **rjob["template"]}
            node_job["metadata"] = {**node_job["metadata"], "name": "atft-test-node-0", "namespace": "ml"}
            _validate_core(node_job, KUBE_VERSION)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_job_passes_operator_rules(render: Callable[..., Objects], scenario: str) -> None:
    """What training-operator v1's and Trainer v2's webhooks check and the CRD schemas do not."""
    objs = render(values=(CHART_DIR / "ci" / scenario,))
    rules = {"PyTorchJob": _pytorchjob_rules, "TrainJob": _trainjob_rules, "Job": _report_rules}
    rules[job(objs)["kind"]](objs)
    for where, template in pod_templates(objs):
        pod = template["spec"]
        names = {v["name"] for v in pod["volumes"]}
        for c in containers(pod).values():
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            assert mounts <= names, f"{where}/{c['name']} mounts a volume the pod lacks"


def _pytorchjob_rules(objs: Objects) -> None:
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


def _trainjob_rules(objs: Objects) -> None:
    trainjob = one(objs, "TrainJob")
    trainer, ref = trainjob["spec"]["trainer"], trainjob["spec"]["runtimeRef"]
    assert not TORCHRUN_RESERVED & {e["name"] for e in trainer["env"]}, "Trainer refuses these in trainer.env"
    assert trainer["numProcPerNode"] == max(1, _gpus(trainer["resourcesPerNode"]))
    if ref["kind"] == "TrainingRuntime":  # the chart's own runtime, beside the TrainJob
        runtime = one(objs, "TrainingRuntime")
        assert ref["name"] == runtime["metadata"]["name"] and "runtimePatches" not in trainjob["spec"]
        assert runtime["spec"]["mlPolicy"]["numNodes"] == trainer["numNodes"]
        (node,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
        assert node["name"] == "node"
        assert node["template"]["metadata"]["labels"] == {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}
        pod = node["template"]["spec"]["template"]["spec"]
        assert pod["containers"][0]["name"] == "node", "Trainer applies trainer.* to the container named node"
    else:
        assert "TrainingRuntime" not in [o["kind"] for o in objs]
        assert [c["name"] for c in upstream_pod(trainjob)["spec"]["containers"]] == ["node"]


def _report_rules(objs: Objects) -> None:
    report = one(objs, "Job")
    assert report["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert not {"PyTorchJob", "TrainJob", "TrainingRuntime"} & {o["kind"] for o in objs}, "the report trains nothing"


def _gpus(container_or_resources: dict) -> int:
    resources = container_or_resources.get("resources", container_or_resources)
    return int(resources.get("limits", {}).get("nvidia.com/gpu", 0))


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
    runtime = copy.deepcopy(one(render("target=trainjob", "trainjob.runtime.create=true"), "TrainingRuntime"))
    runtime["spec"]["mlPolicy"]["torch"]["numProcPerNode"] = 8  # Trainer v2.3.0 moved it to the TrainJob
    (node,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    node["template"]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    errors = crd_errors(runtime, crd_validators)
    assert any("'numProcPerNode' was unexpected" in e for e in errors), errors
    assert any("'imagePullPolicyy' was unexpected" in e for e in errors), errors
