"""``atft delete NAME``: remove a job, its pods and the objects submitted with it (not the run volume)."""

from __future__ import annotations

from atft_cli.options import ContextOpt, KubeconfigOpt, NameArg, NamespaceOpt, ResultOpt, backend
from atft_cli.output import emit, hint, info


def delete(
    name: NameArg,
    output: ResultOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Delete the PyTorchJob and the objects labelled with its instance; PersistentVolumeClaims are kept.

    Each deleted object is named on stderr; with -o stdout gets them as data (kind, namespace, name).

    Examples:

      atft delete smoke-1 -n research
      atft delete smoke-1 -n research -o json          # the deleted objects as a JSON list
    """
    api = backend(kubeconfig, context, namespace)
    deleted = api.delete(name, info)
    if output is not None:
        rows = [{"kind": kind, "namespace": api.namespace, "name": obj} for kind, obj in deleted]
        emit(rows, output, title=f"deleted from {api.namespace}")
    hint("PersistentVolumeClaims are kept (they hold the checkpoints); delete them with kubectl when done")
