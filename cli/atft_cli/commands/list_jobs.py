"""``atft list``: the PyTorchJobs in a namespace with their state, replicas and age."""

from __future__ import annotations

from atft_cli.commands.status import age
from atft_cli.k8s import job_state
from atft_cli.options import ContextOpt, KubeconfigOpt, NamespaceOpt, OutputOpt, backend
from atft_cli.output import Format, emit, hint


def list_jobs(
    output: OutputOpt = Format.table,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """List the PyTorchJobs in the namespace: state, replicas and age.

    Examples:

      atft list -n research
      atft list -n research -o json | jq -r '.[] | select(.state == "Failed") | .name'
    """
    api = backend(kubeconfig, context, namespace)
    rows = [
        {
            "name": job["metadata"]["name"],
            "state": job_state(job),
            "replicas": ", ".join(
                f"{rtype} x{spec.get('replicas', 1)}"
                for rtype, spec in sorted(((job.get("spec") or {}).get("pytorchReplicaSpecs") or {}).items())
            ),
            "age": age(job["metadata"].get("creationTimestamp")),
        }
        for job in sorted(api.list_jobs(), key=lambda j: j["metadata"]["name"])
    ]
    if rows or output is not Format.table:
        emit(rows, output, title=f"PyTorchJobs in {api.namespace}")
    else:
        hint(f"no PyTorchJobs in namespace {api.namespace}; `atft submit` starts one")
