"""Objects as the chart and the training operator write them, and the CLI run as a user runs it."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

from processes import run_cli

JOBS = "apis/kubeflow.org/v1"
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
