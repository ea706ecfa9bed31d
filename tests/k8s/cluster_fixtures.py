"""Objects as the chart and the training operator write them, and the CLI run as a user runs it."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

from processes import run_cli

JOBS = "apis/kubeflow.org/v1"
TRAINER = "apis/trainer.kubeflow.org/v1alpha1"
CORE = "api/v1"
NS = "ml"


def atft(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``atft ARGS`` as a user runs it, without the user's KUBECONFIG: the tests name their fake cluster."""
    return run_cli(*args, env={"KUBECONFIG": None}, timeout=timeout)


def pytorchjob(name: str = "demo", workers: int = 1) -> dict[str, Any]:
    """A PyTorchJob shaped like the chart's (Master + Workers, native sidecar, runPolicy)."""
    pod = {
        "metadata": {"labels": {"app.kubernetes.io/instance": name}},
        "spec": {
            "serviceAccountName": name,
            "initContainers": [{"name": "exporter", "image": "ghcr.io/atft/atft:0.1.0", "restartPolicy": "Always"}],
            "containers": [
                {
                    "name": "pytorch",
                    "image": "ghcr.io/atft/atft:0.1.0",
                    "args": ["--config", "/etc/atft/config.yaml", "--resume", "auto"],
                    "resources": {"limits": {"nvidia.com/gpu": 8, "memory": "100Gi"}},
                }
            ],
            "volumes": [{"name": "config", "configMap": {"name": f"{name}-config"}}],
        },
    }
    replicas = {"Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": pod}}
    if workers:
        replicas["Worker"] = {"replicas": workers, "restartPolicy": "OnFailure", "template": copy.deepcopy(pod)}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/instance": name}},
        "spec": {
            "nprocPerNode": "8",
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 3, "ttlSecondsAfterFinished": 604800},
            "pytorchReplicaSpecs": replicas,
        },
    }


def companions(name: str = "demo") -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/instance": name}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": NS, "labels": labels},
         "automountServiceAccountToken": False},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-config", "namespace": NS,
         "labels": labels}, "data": {"config.yaml": "seed: 7\n"}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": name, "namespace": NS, "labels": labels},
         "spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Egress"], "egress": [{}]}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
         "metadata": {"name": name, "namespace": NS, "labels": labels},
         "spec": {"groups": [{"name": "atft", "rules": [{"alert": "AtftStalled", "expr": "vector(1)"}]}]}},
    ]  # fmt: skip


def condition(kind: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": reason or f"PyTorchJob{kind}", "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z", "lastUpdateTime": "2026-01-01T00:00:00Z"}  # fmt: skip


def job_status(*kinds: str, active: int = 0, succeeded: int = 0, failed: int = 0, message: str = "") -> dict[str, Any]:
    """A status as the training operator writes it: earlier conditions turn False when a later one is True."""
    conds = [condition(k, message=message if k == "Failed" else "") for k in kinds]
    for cond in conds[:-1]:
        if cond["type"] == "Running" and kinds[-1] in ("Succeeded", "Failed"):
            cond["status"] = "False"
    return {
        "conditions": conds,
        "replicaStatuses": {"Master": {"active": active, "succeeded": succeeded, "failed": failed}},
        "startTime": "2026-01-01T00:00:00Z",
    }


def pod(job: str, replica: str, index: int, phase: str = "Running", restarts: int = 0) -> dict[str, Any]:
    """A pod as the operator labels it (the labels the SDK selects on)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job}-{replica}-{index}",
            "namespace": NS,
            "labels": {
                "training.kubeflow.org/job-name": job,
                "training.kubeflow.org/replica-type": replica,
                "training.kubeflow.org/replica-index": str(index),
                "training.kubeflow.org/operator-name": "pytorchjob-controller",
            },
        },
        "spec": {"nodeName": f"gpu-node-{index}", "containers": [{"name": "pytorch", "image": "x"}]},
        "status": {"phase": phase, "containerStatuses": [{"name": "pytorch", "restartCount": restarts, "ready": True,
                   "image": "x", "imageID": "", "state": {}}]},
    }  # fmt: skip


# --- Kubeflow Trainer v2 -----------------------------------------------------------------------------------------
def trainjob(name: str = "demo", nodes: int = 2) -> dict[str, Any]:
    """A TrainJob shaped like the chart's: the upstream torch runtime, the trainer's image, args and resources,
    and a runtime patch that mounts the config and sets the ServiceAccount and pod labels."""
    labels = {"app.kubernetes.io/instance": name}
    pod_patch = {
        "metadata": {"labels": labels},
        "spec": {
            "serviceAccountName": name,
            "volumes": [{"name": "config", "configMap": {"name": f"{name}-config"}}],
            "containers": [{"name": "node", "volumeMounts": [{"name": "config", "mountPath": "/etc/atft",
                                                               "readOnly": True}]}],
        },
    }  # fmt: skip
    replicated = {"name": "node", "template": {"spec": {"template": pod_patch}}}
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": NS, "labels": {**labels, "kueue.x-k8s.io/queue-name": "gpu"}},
        "spec": {
            "runtimeRef": {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime",
                           "name": "torch-distributed"},
            "trainer": {
                "image": "ghcr.io/atft/atft:0.1.0",
                "args": ["--config", "/etc/atft/config.yaml", "--resume", "auto"],
                "numNodes": nodes,
                "numProcPerNode": 8,
                "resourcesPerNode": {"limits": {"nvidia.com/gpu": 8, "memory": "100Gi"}},
                "env": [{"name": "ATFT_RUN_ID", "value": name}],
            },
            "runtimePatches": [{"manager": "atft.dev/chart",
                                "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [replicated]}}}}],
        },
    }  # fmt: skip


def training_runtime(name: str = "demo") -> dict[str, Any]:
    """The chart's own namespaced TrainingRuntime (``trainjob.runtime.create``), labelled with the instance."""
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainingRuntime",
        "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/instance": name,
                                                              "trainer.kubeflow.org/framework": "torch"}},
        "spec": {"mlPolicy": {"numNodes": 1, "torch": {}}, "template": {"spec": {"replicatedJobs": [
            {"name": "node", "template": {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step":
                                                                   "trainer"}},
                                          "spec": {"template": {"spec": {"containers": [
                                              {"name": "node", "image": "ghcr.io/atft/atft:0.1.0"}]}}}}}]}}},
    }  # fmt: skip


def trainer_condition(kind: str, status: str = "True", reason: str = "", message: str = "") -> dict[str, Any]:
    """A metav1.Condition as the Trainer writes it (reason is required and CamelCase)."""
    return {"type": kind, "status": status, "reason": reason or kind, "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip


def trainjob_status(
    *conditions: dict[str, Any], active: int = 0, ready: int = 0, succeeded: int = 0, failed: int = 0
) -> dict[str, Any]:
    """A TrainJob status: the conditions, and the one child Job of the replicated job ``node``."""
    node = {"name": "node", "active": active, "ready": ready, "succeeded": succeeded, "failed": failed,
            "suspended": 0}  # fmt: skip
    return {"conditions": list(conditions), "jobsStatus": [node]}


def node_pod(job: str, index: int, phase: str = "Running", restarts: int = 0) -> dict[str, Any]:
    """A pod of a TrainJob's node Job, labelled as JobSet and the Job controller label it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job}-node-0-{index}-x{index}q7z",
            "namespace": NS,
            "labels": {
                "jobset.sigs.k8s.io/jobset-name": job,
                "jobset.sigs.k8s.io/replicatedjob-name": "node",
                "jobset.sigs.k8s.io/job-index": "0",
                "batch.kubernetes.io/job-completion-index": str(index),
                "trainer.kubeflow.org/trainjob-ancestor-step": "trainer",
            },
        },
        "spec": {"nodeName": f"gpu-node-{index}", "containers": [{"name": "node", "image": "x"}]},
        "status": {"phase": phase, "containerStatuses": [{"name": "node", "restartCount": restarts, "ready": True,
                   "image": "x", "imageID": "", "state": {}}]},
    }  # fmt: skip
