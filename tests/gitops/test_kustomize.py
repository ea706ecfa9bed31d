"""k8s/: every overlay built by the real `kubectl kustomize`, every object validated, and what the objects promise.

Promises checked here: everything lives in the overlay's namespace and nothing is cluster-wide; the retrain
CronJob runs `atft submit --wait` (a command line the real CLI accepts) with the overlay's values, one run at a
time, under a unique name per schedule, with a locked-down pod; the Argo CD and Flux objects sync the overlays.
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
import yaml
from gitops_helpers import K8S, OVERLAYS, Objects, by_kind
from k8s_schemas import Validators, crd_errors

from atft_cli.render import CHART_DIR

pytestmark = pytest.mark.integration

KUBE = "1.33"
DIGEST = re.compile(r"[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}")
CHART_IMAGE = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["image"]
CLUSTER_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass"}
GITOPS_FILES = sorted([*(K8S / "argocd").glob("*.yaml"), *(K8S / "flux").glob("*.yaml")])


def validate(obj: dict[str, Any], validators: Validators) -> list[str]:
    """Schema errors of ``obj``: its CRD's schema (strict) or the Kubernetes OpenAPI schema (strict)."""
    if (obj["apiVersion"], obj["kind"]) in validators:
        return crd_errors(obj, validators)
    try:
        kubernetes_validate.validate(obj, KUBE, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{exc.path}: {exc.message}"]
    return []


def cronjob(objs: Objects) -> dict[str, Any]:
    (found,) = by_kind(objs, "CronJob")
    return found


def submit_container(pod: dict[str, Any]) -> dict[str, Any]:
    """The container that runs `atft submit`: the retrain's only one, or the walk-forward's init container."""
    (found,) = [c for c in [*pod.get("initContainers", []), *pod["containers"]] if c["args"][0] == "submit"]
    return found


def job_kind(objs: Objects) -> str:
    """The overlay's training job kind: PyTorchJob, or TrainJob on a Kubeflow Trainer v2 cluster."""
    (kind,) = {o["kind"] for o in objs} & {"PyTorchJob", "TrainJob"}
    return kind


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_and_in_the_overlay_namespace(
    overlay: str, built: dict[str, Objects], validators: Validators
) -> None:
    objs = built[overlay]
    kinds = {o["kind"] for o in objs}
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "CronJob", "ConfigMap", job_kind(objs)} <= kinds
    for obj in objs:
        assert validate(obj, validators) == [], f"{obj['kind']} {obj['metadata']['name']} in {overlay}"
    assert not kinds & (CLUSTER_KINDS - {"Namespace"}), "nothing cluster-wide besides the namespace itself"
    (namespace,) = by_kind(objs, "Namespace")
    assert namespace["metadata"]["name"] == f"atft-{overlay}"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {o["metadata"].get("namespace") for o in objs if o["kind"] != "Namespace"} == {f"atft-{overlay}"}
    (binding,) = by_kind(objs, "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "atft-retrain", "namespace": f"atft-{overlay}"}]


def test_validation_rejects_a_broken_object(built: dict[str, Objects], validators: Validators) -> None:
    """The check above can fail: a misspelt CronJob field and a PyTorchJob field of the wrong type are caught."""
    broken = yaml.safe_load(yaml.safe_dump(cronjob(built["dev"])))
    broken["spec"]["concurrencyPolicyy"] = "Forbid"
    assert validate(broken, validators)
    job = yaml.safe_load(yaml.safe_dump(by_kind(built["dev"], "PyTorchJob")[0]))
    job["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = "one"
    assert any("replicas" in e for e in validate(job, validators))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_retrain_cronjob_one_run_at_a_time_named_per_schedule(overlay: str, built: dict[str, Objects]) -> None:
    cron = cronjob(built[overlay])
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 1 <= spec["successfulJobsHistoryLimit"] <= 5 and 1 <= spec["failedJobsHistoryLimit"] <= 5
    assert re.fullmatch(r"(\S+ ){4}\S+", spec["schedule"]) and spec["timeZone"] == "Etc/UTC"
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0, "a second pod of the same Job would find its PyTorchJob name taken"
    pod = job["template"]["spec"]
    container = submit_container(pod)
    assert container["command"] == ["atft"] and "--wait" in container["args"]
    args = container["args"]
    assert args[args.index("--name") + 1] == "$(JOB_NAME)"
    env = {e["name"]: e for e in container["env"]}
    assert env["JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['batch.kubernetes.io/job-name']"
    # The wait must end (exit 3) before the Job's deadline kills the pod, and the API token must outlive both.
    timeout_s = _seconds(args[args.index("--timeout") + 1])
    token = next(v for v in pod["volumes"] if v["name"] == "api-token")["projected"]["sources"][0]
    assert timeout_s < job["activeDeadlineSeconds"] <= token["serviceAccountToken"]["expirationSeconds"]


def test_walk_forward_submits_every_fold_then_reports_on_the_same_validation(built: dict[str, Objects]) -> None:
    """The nightly walk-forward (k8s/components/walk-forward, used by the trainer overlay) replaces the retrain:
    its init container fans the folds out and waits; then its container pools the very validation they wrote,
    with the same config and seeds, on the runs volume it mounts read-write."""
    objs = built["trainer"]
    assert [c["metadata"]["name"] for c in by_kind(objs, "CronJob")] == ["atft-walk-forward"]
    pod = cronjob(objs)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (submit,) = pod["initContainers"]
    (report,) = pod["containers"]
    sub, rep = submit["args"], report["args"]
    assert sub[:2] == ["submit", "--validate"] and sub[sub.index("--target") + 1] == "trainjob"
    assert rep[:2] == ["validate", "--report-only"] and rep[rep.index("--out") + 1] == "/runs/$(JOB_NAME)"
    for option in ("--config", "--seeds"):
        assert sub[sub.index(option) + 1] == rep[rep.index(option) + 1], option
    assert sub[sub.index("--name") + 1] == "$(JOB_NAME)"
    mounts = {m["name"]: m for m in report["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["runs"]["mountPath"] == "/runs" and not mounts["runs"].get("readOnly")
    assert mounts["data"]["readOnly"] is True and rep[rep.index("--data") + 1].startswith("/data/")
    values = yaml.safe_load((K8S / "overlays" / "trainer" / "values.yaml").read_text())
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "atft-data"  # the chart's data.claimName default
    assert rep[rep.index("--data") + 1] == f"/data/{values['dataFile']}"
    assert pod["securityContext"]["fsGroup"] == 10001  # the report writes into the volume as the training pods do


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_retrain_pod_is_locked_down_and_reads_the_api_only_through_its_own_token(
    overlay: str, built: dict[str, Objects]
) -> None:
    objs = built[overlay]
    pod = cronjob(objs)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = submit_container(pod)
    assert pod["securityContext"] | {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"},
    } == pod["securityContext"]  # fmt: skip
    for each in [*pod.get("initContainers", []), *pod["containers"]]:
        sc = each["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]} and "limits" in each["resources"]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "atft-retrain"
    accounts = {a["metadata"]["name"]: a for a in by_kind(objs, "ServiceAccount")}
    assert {a["automountServiceAccountToken"] for a in accounts.values()} == {False}
    # The kubeconfig in the generated ConfigMap points at the projected token and CA, and KUBECONFIG at it.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    kube_cm = _config_map(objs, volumes["kubeconfig"]["configMap"]["name"])
    (key,) = kube_cm["data"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBECONFIG"] == f"{mounts['kubeconfig']}/{key}"
    kubeconfig = yaml.safe_load(kube_cm["data"][key])
    assert kubeconfig["users"][0]["user"] == {"tokenFile": f"{mounts['api-token']}/token"}
    assert kubeconfig["clusters"][0]["cluster"]["certificate-authority"] == f"{mounts['api-token']}/ca.crt"
    # Every path the pod writes is a volume: /tmp (HOME) is an emptyDir; the rest is mounted read-only.
    assert env["HOME"] == mounts["tmp"] == "/tmp" and "emptyDir" in volumes["tmp"]
    assert all(m.get("readOnly") for m in container["volumeMounts"] if m["name"] != "tmp")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_retrain_values_are_the_overlay_values_and_images_agree(overlay: str, built: dict[str, Objects]) -> None:
    """The CronJob runs the very image its values give the training pods (by digest where the values pin one)."""
    objs = built[overlay]
    pod = cronjob(objs)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    values_cm = _config_map(objs, volumes["values"]["configMap"]["name"])
    source = (K8S / "overlays" / overlay / "values.yaml").read_text()
    assert values_cm["data"] == {"values.yaml": source}
    image = {**CHART_IMAGE, **yaml.safe_load(source)["image"]}
    want = f"{image['repository']}@{image['digest']}" if image["digest"] else f"{image['repository']}:{image['tag']}"
    assert {c["image"] for c in [*pod.get("initContainers", []), *pod["containers"]]} == {want}, "images differ"
    (job,) = by_kind(objs, job_kind(objs))
    assert {i for o in objs if o["kind"] in (job["kind"], "TrainingRuntime") for _, _, i in images(o)} == {want}


def images(obj: Any) -> list[tuple[str, str, str]]:
    """(kind, name, image) of every container and init container anywhere in ``obj`` (pod templates included),
    and of a TrainJob's trainer (``spec.trainer.image``); a runtime patch's containers carry no image."""
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers"):
                    found.extend((obj["kind"], obj["metadata"]["name"], c["image"]) for c in value if "image" in c)
                elif key == "trainer" and isinstance(value, dict) and "image" in value:
                    found.append((obj["kind"], obj["metadata"]["name"], value["image"]))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(obj)
    return found


def test_prod_runs_every_image_by_digest(built: dict[str, Objects]) -> None:
    """Nothing prod runs is referenced by a tag that can move: the committed render, and everything the overlay
    applies (the retrain CronJob included), name the image as repository@sha256:<64 hex>."""
    rendered = [o for o in yaml.safe_load_all((K8S / "rendered" / "prod" / "manifests.yaml").read_text()) if o]
    for source, objs in (("k8s/rendered/prod", rendered), ("k8s/overlays/prod", built["prod"])):
        found = [i for o in objs for i in images(o)]
        assert {"PyTorchJob"} <= {kind for kind, _, _ in found}, source
        tagged = [(kind, name, image) for kind, name, image in found if not DIGEST.fullmatch(image)]
        assert tagged == [], f"{source}: images not pinned by digest"
    assert "CronJob" in {kind for o in built["prod"] for kind, _, _ in images(o)}
    # The check above can fail: dev follows a tag.
    assert not all(DIGEST.fullmatch(image) for o in built["dev"] for _, _, image in images(o))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_adds_only_prune_guards_to_the_rendered_job(overlay: str, built: dict[str, Objects]) -> None:
    """The job Argo CD / Flux apply is the committed render, object for object; only the annotations that keep
    a superseded run from being pruned mid-training are added (the name's hash is over what really runs)."""
    rendered = [o for o in yaml.safe_load_all((K8S / "rendered" / overlay / "manifests.yaml").read_text()) if o]
    applied = {(o["kind"], o["metadata"]["name"]): o for o in built[overlay]}
    guards = {"argocd.argoproj.io/sync-options": "Prune=false", "kustomize.toolkit.fluxcd.io/prune": "disabled"}
    for obj in rendered:
        live = yaml.safe_load(yaml.safe_dump(applied[(obj["kind"], obj["metadata"]["name"])]))
        annotations = live["metadata"]["annotations"]
        assert {k: annotations.pop(k) for k in guards} == guards
        if not annotations:
            del live["metadata"]["annotations"]
        assert live == obj


@pytest.mark.parametrize("path", GITOPS_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_argocd_and_flux_objects_are_valid_and_sync_an_overlay(
    path: Any, validators: Validators, built: dict[str, Objects]
) -> None:
    objs = [o for o in yaml.safe_load_all(path.read_text()) if o]
    for obj in objs:
        assert crd_errors(obj, validators) == [], f"{obj['kind']} in {path.name}"
    overlay = path.stem.removeprefix("atft-")
    assert overlay in OVERLAYS
    if path.parent.name == "argocd":
        (app,) = objs
        assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        assert app["spec"]["source"]["path"] == f"k8s/overlays/{overlay}"
        assert app["spec"]["destination"]["namespace"] == f"atft-{overlay}"
        group = {"PyTorchJob": "kubeflow.org", "TrainJob": "trainer.kubeflow.org"}
        kind = job_kind(built[overlay])
        assert {"group": group[kind], "kind": kind, "jsonPointers": ["/spec"]} in app["spec"]["ignoreDifferences"]
        return
    source, kustomization = sorted(objs, key=lambda o: o["kind"])  # GitRepository < Kustomization
    assert kustomization["spec"]["path"] == f"./k8s/overlays/{overlay}" and kustomization["spec"]["prune"] is True
    assert kustomization["spec"]["sourceRef"] == {"kind": "GitRepository", "name": source["metadata"]["name"]}
    assert source["spec"]["url"].startswith("https://") and source["spec"]["ref"] == {"branch": "main"}


def test_flux_sources_agree() -> None:
    """Both Flux files carry the same GitRepository: applying either, or both, gives the one source."""
    sources = [
        next(o for o in yaml.safe_load_all(p.read_text()) if o["kind"] == "GitRepository")
        for p in sorted((K8S / "flux").glob("*.yaml"))
    ]
    assert len(sources) == len(OVERLAYS) and all(s == sources[0] for s in sources)


def _config_map(objs: Objects, name: str) -> dict[str, Any]:
    (found,) = [o for o in by_kind(objs, "ConfigMap") if o["metadata"]["name"] == name]
    return found


def _seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+)([smhd])", text)
    assert match, text
    return int(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
