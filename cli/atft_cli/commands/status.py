"""``atft status NAME``: the job's state, conditions, replica counts and its pods (phase, restarts, age)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from atft_cli.k8s import job_state
from atft_cli.options import ContextOpt, KubeconfigOpt, NameArg, NamespaceOpt, OutputOpt, backend
from atft_cli.output import Format, emit, hint


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """kubectl-style age (``45s``, ``12m``, ``3h20m``, ``2d4h``) of an RFC 3339 timestamp."""
    if not timestamp:
        return "-"
    then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{secs}s"


def pod_row(pod: dict[str, Any]) -> dict[str, Any]:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    labels = meta.get("labels") or {}
    statuses = [*(status.get("containerStatuses") or []), *(status.get("initContainerStatuses") or [])]
    return {
        "pod": meta.get("name"),
        "replica": labels.get("training.kubeflow.org/replica-type", "-"),
        "index": labels.get("training.kubeflow.org/replica-index", "-"),
        "phase": status.get("phase", "-"),
        "restarts": sum(int(s.get("restartCount") or 0) for s in statuses),
        "node": (pod.get("spec") or {}).get("nodeName") or "-",
        "age": age(meta.get("creationTimestamp")),
    }


def describe(job: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The status record printed by ``atft status`` (and streamed by ``wait``): plain data, no API objects."""
    meta, status = job.get("metadata") or {}, job.get("status") or {}
    rows = [pod_row(p) for p in pods]
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "state": job_state(job),
        "age": age(meta.get("creationTimestamp")),
        "restarts": sum(r["restarts"] for r in rows),
        "conditions": [
            {k: c.get(k, "") for k in ("type", "status", "reason", "message", "lastTransitionTime")}
            for c in status.get("conditions") or []
        ],
        "replicas": {
            rtype: {k: int(v.get(k) or 0) for k in ("active", "succeeded", "failed")}
            for rtype, v in sorted((status.get("replicaStatuses") or {}).items())
        },
        "pods": rows,
    }


def head(record: dict[str, Any]) -> dict[str, Any]:
    """The one-row table of a status record: name, namespace, state, age, restarts, replica counts."""
    row = {k: record[k] for k in ("name", "namespace", "state", "age", "restarts")}
    row["replicas"] = (
        ", ".join(
            f"{rtype} {c['active']} active/{c['succeeded']} ok/{c['failed']} failed"
            for rtype, c in record["replicas"].items()
        )
        or "-"
    )
    return row


def status(
    name: NameArg,
    output: OutputOpt = Format.table,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Show a PyTorchJob: state, conditions, replica states, pods with restarts and age.

    Examples:

      atft status smoke-1 -n research                 # tables: the job, its conditions, its pods
      atft status smoke-1 -n research -o json         # one record for scripts (or -o yaml)
      atft status smoke-1 --context prod-cluster --kubeconfig ~/.kube/prod
    """
    api = backend(kubeconfig, context, namespace)
    record = describe(api.get(name), api.pods(name))
    if output is not Format.table:
        emit(record, output)
        return
    emit(head(record), output, title=f"PyTorchJob {api.namespace}/{name}")
    if record["conditions"]:
        emit(record["conditions"], output, title="conditions")
    if record["pods"]:
        emit(record["pods"], output, title="pods")
    else:
        hint("no pods yet: the operator has not created them or they wait for scheduling (kubectl get events)")
    hint(f"next: `atft logs {name} -f -n {api.namespace}` or `atft wait {name} -n {api.namespace}`")
