"""``atft delete NAME``: remove a job, its pods and the objects submitted with it (not the run volume)."""

from __future__ import annotations

from atft_cli.commands.status import ContextOpt, KubeconfigOpt, NameArg, NamespaceOpt, backend
from atft_cli.output import hint, info


def delete(
    name: NameArg, kubeconfig: KubeconfigOpt = None, context: ContextOpt = None, namespace: NamespaceOpt = None
) -> None:
    """Delete the PyTorchJob and the objects labelled with its instance; PersistentVolumeClaims are kept."""
    api = backend(kubeconfig, context, namespace)
    api.delete(name, info)
    hint("PersistentVolumeClaims are kept (they hold the checkpoints); delete them with kubectl when done")
