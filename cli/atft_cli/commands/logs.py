"""``atft logs NAME``: the training container's log of one replica (default: the master), optionally followed."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from atft_cli.k8s import JobNotFound
from atft_cli.options import ContextOpt, KubeconfigOpt, NameArg, NamespaceOpt, backend


class Replica(StrEnum):
    master = "master"
    worker = "worker"


def logs(
    name: NameArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="stream until the container ends")] = False,
    replica: Annotated[Replica, typer.Option("--replica", help="master | worker")] = Replica.master,
    index: Annotated[int | None, typer.Option("--index", min=0, help="replica index (default: all)")] = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Print the log of the job's `pytorch` container; several pods are prefixed with their name.

    Examples:

      atft logs smoke-1 -n research                              # the master's log so far
      atft logs smoke-1 -f -n research                           # followed to the container's end
      atft logs smoke-1 --replica worker -n research             # every worker, each line prefixed with its pod
      atft logs smoke-1 --replica worker --index 1 -f -n research
    """
    api = backend(kubeconfig, context, namespace)
    pods = api.pods(name, replica.value, index)
    if not pods:
        api.get(name)  # a missing job is JobNotFound, not "no pods"
        which = f"{replica.value} {index}" if index is not None else replica.value
        raise JobNotFound(
            f"{api.ref(name)} has no {which} pod yet (not scheduled, or cleaned up); "
            f"`atft status {name} -n {api.namespace}` shows why"
        )
    if follow and len(pods) > 1:
        raise typer.BadParameter(
            f"{len(pods)} {replica.value} pods: follow one, pick it with --index 0..{len(pods) - 1}"
        )
    names = sorted(p["metadata"]["name"] for p in pods)
    for pod in names:
        prefix = f"[{pod}] " if len(names) > 1 else ""
        for line in api.logs(pod, follow):
            print(f"{prefix}{line}", flush=follow)
