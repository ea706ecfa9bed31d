"""``atft list``: the jobs of one kind (``--target``) in a namespace with their state, replicas and age."""

from __future__ import annotations

from atft_cli.commands.status import age
from atft_cli.k8s import DEFAULT_TARGET
from atft_cli.options import ContextOpt, KubeconfigOpt, NamespaceOpt, OutputOpt, TargetOpt, backend
from atft_cli.output import Format, emit, hint


def list_jobs(
    output: OutputOpt = Format.table,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    target: TargetOpt = DEFAULT_TARGET,
) -> None:
    """List the PyTorchJobs (or TrainJobs) in the namespace: state, replicas and age.

    Examples:

      atft list -n research
      atft list -n research -o json | jq -r '.[] | select(.state == "Failed") | .name'
      atft list --target trainjob -n research       # Kubeflow Trainer v2 TrainJobs
    """
    api = backend(target, kubeconfig, context, namespace)
    rows = [
        {
            "name": job["metadata"]["name"],
            "state": api.state(job),
            "replicas": api.shape(job),
            "age": age(job["metadata"].get("creationTimestamp")),
        }
        for job in sorted(api.list_jobs(), key=lambda j: j["metadata"]["name"])
    ]
    if rows or output is not Format.table:
        emit(rows, output, title=f"{api.kind}s in {api.namespace}")
    else:
        hint(f"no {api.kind}s in namespace {api.namespace}; `atft submit` starts one")
