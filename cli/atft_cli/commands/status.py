"""``atft status NAME``: the job's state, conditions, replica counts and its pods (phase, restarts, age);
``atft status --validation ID``: one row per fold job of a validation.

The record is the same for both targets: the backend says the state (one vocabulary: Created, Running,
Succeeded, Failed, Suspended, Pending), the replica counts (PyTorchJob replica types, TrainJob replicated jobs)
and which labels name a pod's replica and index.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from atft_cli.backends import JobBackend
from atft_cli.k8s import DEFAULT_TARGET
from atft_cli.options import (
    ContextOpt,
    JobOrValidationArg,
    KubeconfigOpt,
    NamespaceOpt,
    OutputOpt,
    TargetOpt,
    ValidationOpt,
    backend,
    one_of,
)
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


def pod_row(api: JobBackend, pod: dict[str, Any]) -> dict[str, Any]:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    replica, index = api.pod_replica(pod)
    statuses = [*(status.get("containerStatuses") or []), *(status.get("initContainerStatuses") or [])]
    return {
        "pod": meta.get("name"),
        "replica": replica,
        "index": index,
        "phase": status.get("phase", "-"),
        "restarts": sum(int(s.get("restartCount") or 0) for s in statuses),
        "node": (pod.get("spec") or {}).get("nodeName") or "-",
        "age": age(meta.get("creationTimestamp")),
    }


def describe(api: JobBackend, job: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The status record printed by ``atft status`` (and streamed by ``wait``): plain data, no API objects."""
    meta, status = job.get("metadata") or {}, job.get("status") or {}
    rows = [pod_row(api, p) for p in pods]
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "state": api.state(job),
        "age": age(meta.get("creationTimestamp")),
        "restarts": sum(r["restarts"] for r in rows),
        "conditions": [
            {k: c.get(k, "") for k in ("type", "status", "reason", "message", "lastTransitionTime")}
            for c in status.get("conditions") or []
        ],
        "replicas": api.replicas(job),
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
    name: JobOrValidationArg = None,
    output: OutputOpt = Format.table,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    target: TargetOpt = DEFAULT_TARGET,
    validation: ValidationOpt = None,
) -> None:
    """Show a PyTorchJob (or a TrainJob): state, conditions, replica states, pods with restarts and age.

    Examples:

      atft status smoke-1 -n research                 # tables: the job, its conditions, its pods
      atft status smoke-1 -n research -o json         # one record for scripts (or -o yaml)
      atft status smoke-1 --context prod-cluster --kubeconfig ~/.kube/prod
      atft status smoke-t --target trainjob -n research   # a Kubeflow Trainer v2 TrainJob
      atft status --validation wf-1 -n research        # every fold job of a validation, one row each
    """
    one_of(name, validation)
    api = backend(target, kubeconfig, context, namespace)
    if validation is not None:
        _validation(api, validation, output)
        return
    assert name is not None
    record = describe(api, api.get(name), api.pods(name))
    if output is not Format.table:
        emit(record, output)
        return
    emit(head(record), output, title=api.ref(name))
    if record["conditions"]:
        emit(record["conditions"], output, title="conditions")
    if record["pods"]:
        emit(record["pods"], output, title="pods")
    else:
        hint("no pods yet: the operator has not created them or they wait for scheduling (kubectl get events)")
    hint(f"next: `{api.command('logs', name, '-f')}` or `{api.command('wait', name)}`")


def _validation(api: JobBackend, validation: str, output: Format) -> None:
    """One row per fold job of ``validation`` (fold, seed, state), and how many are in each state."""
    from atft_cli.k8s import JobNotFound
    from atft_cli.validation import VALIDATION_LABEL, counts, fold_rows

    rows = fold_rows(api, validation)
    if not rows:
        raise JobNotFound(
            f"no {api.kind}s labelled {VALIDATION_LABEL}={validation} in namespace {api.namespace}; "
            f"`{api.command('list')}` shows the jobs there"
        )
    emit(rows, output, title=f"validation {validation} in {api.namespace}: {counts(rows)}")
    if output is Format.table:
        hint(f"next: `{api.command('wait', extra=f'--validation {validation}')}`")
