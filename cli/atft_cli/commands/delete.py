"""``atft delete NAME``: remove a job, its pods and the objects submitted with it (not the run volume)."""

from __future__ import annotations

from atft_cli.k8s import DEFAULT_TARGET
from atft_cli.options import ContextOpt, KubeconfigOpt, NameArg, NamespaceOpt, ResultOpt, TargetOpt, backend
from atft_cli.output import emit, hint, info


def delete(
    name: NameArg,
    output: ResultOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    target: TargetOpt = DEFAULT_TARGET,
) -> None:
    """Delete the PyTorchJob (or TrainJob) and the objects labelled with its instance; PVCs are kept.

    With --target trainjob the chart's own TrainingRuntime goes too (when the release rendered one).

    Each deleted object is named on stderr; with -o stdout gets them as data (kind, namespace, name).

    Examples:

      atft delete smoke-1 -n research
      atft delete smoke-1 -n research -o json          # the deleted objects as a JSON list
      atft delete smoke-t --target trainjob -n research
    """
    api = backend(target, kubeconfig, context, namespace)
    deleted = api.delete(name, info)
    if output is not None:
        rows = [{"kind": kind, "namespace": api.namespace, "name": obj} for kind, obj in deleted]
        emit(rows, output, title=f"deleted from {api.namespace}")
    hint("PersistentVolumeClaims are kept (they hold the checkpoints); delete them with kubectl when done")
