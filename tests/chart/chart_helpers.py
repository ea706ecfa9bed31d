"""Helpers of the chart tests: scenario list and accessors for rendered objects (CRD schemas: tests/k8s_schemas.py)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import yaml
from k8s_schemas import SCHEMA_DIR

from atft_cli.render import CHART_DIR, REPO_ROOT

SCENARIOS = sorted(p.name for p in (CHART_DIR / "ci").glob("*-values.yaml"))
PROD = REPO_ROOT / "configs" / "prod-20ep.yaml"
JOB_KINDS = ("PyTorchJob", "TrainJob", "Job")  # a render holds exactly one: the training job or the report Job
UPSTREAM_RUNTIME = SCHEMA_DIR / "examples" / "trainer-runtime-torch-distributed.yaml"
Objects = list[dict[str, Any]]


def one(objs: Objects, kind: str) -> dict[str, Any]:
    """The single object of ``kind``."""
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}: {[o['kind'] for o in objs]}"
    return found[0]


def job(objs: Objects) -> dict[str, Any]:
    """The one job of a render: a PyTorchJob, a TrainJob or the report Job."""
    found = [o for o in objs if o["kind"] in JOB_KINDS]
    assert len(found) == 1, f"expected one of {JOB_KINDS}, got {[o['kind'] for o in objs]}"
    return found[0]


def config_map(objs: Objects) -> dict[str, Any]:
    """The ConfigMap with the run config (``<job name>-config``; the chart may render other ConfigMaps)."""
    name = job(objs)["metadata"]["name"]
    found = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{name}-config"]
    assert len(found) == 1, f"expected one ConfigMap {name}-config"
    return found[0]


def pod_specs(objs: Objects) -> Iterator[tuple[str, dict[str, Any]]]:
    """(replica type, pod spec) of every replica of the PyTorchJob."""
    for rtype, spec in one(objs, "PyTorchJob")["spec"]["pytorchReplicaSpecs"].items():
        yield rtype, spec["template"]["spec"]


def runtime_patch(trainjob: dict[str, Any]) -> dict[str, Any]:
    """The pod template a TrainJob patches into upstream's ``node`` job (only the fields a patch may set)."""
    (patch,) = trainjob["spec"]["runtimePatches"]
    (node,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert node["name"] == "node"
    template: dict[str, Any] = node["template"]["spec"]["template"]
    return template


def pod_templates(objs: Objects) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(KIND/NAME, pod template)`` of every pod the render defines, whatever the target: each PyTorchJob
    replica, each replicated job of the chart's TrainingRuntime, the TrainJob's patch of upstream's pods
    (``TrainJob/runtimePatches``: a partial template) and the report Job."""
    for obj in objs:
        kind, spec = obj["kind"], obj.get("spec", {})
        if kind == "PyTorchJob":
            for rtype, replica in spec["pytorchReplicaSpecs"].items():
                yield f"{kind}/{rtype}", replica["template"]
        elif kind == "TrainingRuntime":
            for rjob in spec["template"]["spec"]["replicatedJobs"]:
                yield f"{kind}/{rjob['name']}", rjob["template"]["spec"]["template"]
        elif kind == "TrainJob" and "runtimePatches" in spec:
            yield f"{kind}/runtimePatches", runtime_patch(obj)
        elif kind == "Job":
            yield f"{kind}/{obj['metadata']['name']}", spec["template"]


def upstream_pod(trainjob: dict[str, Any]) -> dict[str, Any]:
    """The node pod Trainer v2 builds from upstream's torch-distributed runtime and this TrainJob, as a core Pod:
    the trainer fields go onto the ``node`` container, then the patch's fields onto the pod and that container
    (the runtime sets none of them, so an overlay is the merge). The PET_* variables and port Trainer adds are
    left out. The stored runtime is a Helm template: its ``{{ }}`` lines (extra labels only) are dropped."""
    text = "\n".join(line for line in UPSTREAM_RUNTIME.read_text().splitlines() if "{{" not in line)
    (rjob,) = yaml.safe_load(text)["spec"]["template"]["spec"]["replicatedJobs"]
    template = copy.deepcopy(rjob["template"]["spec"]["template"])
    (node,) = template["spec"]["containers"]
    trainer = trainjob["spec"]["trainer"]
    node.update({k: trainer[k] for k in ("image", "command", "args", "env") if k in trainer})
    node["resources"] = trainer["resourcesPerNode"]
    patch = copy.deepcopy(runtime_patch(trainjob))
    (patched_node,) = patch["spec"].pop("containers")
    node.update({k: v for k, v in patched_node.items() if k != "name"})
    template["spec"].update(patch["spec"])
    name, namespace = trainjob["metadata"]["name"], trainjob["metadata"]["namespace"]
    meta = {**patch["metadata"], "name": f"{name}-node-0-0", "namespace": namespace}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]}


def containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every container of a pod spec (init containers included) by name."""
    return {c["name"]: c for c in [*pod.get("initContainers", []), *pod["containers"]]}
