"""``atft logs NAME``: the training container's log of one replica (default: the first), optionally followed.

Which pods: a PyTorchJob's ``--replica`` is master (default) or worker, its ``--index`` the replica index; a
TrainJob's is node (its only replicated job), its ``--index`` the node rank (the Job completion index). Without
``--index`` every pod of the replica is printed, each line prefixed with its pod; ``-f`` follows one pod.
"""

from __future__ import annotations

from typing import Annotated

import typer

from atft_cli.k8s import DEFAULT_TARGET, JobNotFound
from atft_cli.options import ContextOpt, KubeconfigOpt, NameArg, NamespaceOpt, TargetOpt, backend


def logs(
    name: NameArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="stream until the container ends")] = False,
    replica: Annotated[
        str | None,
        typer.Option("--replica", help="pytorchjob: master (default) | worker; trainjob: node (default, its only one)"),
    ] = None,
    index: Annotated[
        int | None, typer.Option("--index", min=0, help="replica index; a TrainJob's node rank (default: all)")
    ] = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    target: TargetOpt = DEFAULT_TARGET,
) -> None:
    """Print the log of the job's training container (`pytorch`, a TrainJob's `node`); several pods are prefixed.

    Examples:

      atft logs smoke-1 -n research                              # the master's log so far
      atft logs smoke-1 -f -n research                           # followed to the container's end
      atft logs smoke-1 --replica worker -n research             # every worker, each line prefixed with its pod
      atft logs smoke-1 --replica worker --index 1 -f -n research
      atft logs smoke-t --target trainjob -n research            # every node of a TrainJob, prefixed
      atft logs smoke-t --target trainjob --index 0 -f -n research   # node 0 (rank 0), followed
    """
    api = backend(target, kubeconfig, context, namespace)
    chosen = replica or api.replica_types[0]
    if chosen not in api.replica_types:
        raise typer.BadParameter(
            f"{chosen!r}: a {api.kind} has replicas {', '.join(api.replica_types)}", param_hint="--replica"
        )
    pods = api.pods(name, chosen, index)
    if not pods:
        api.get(name)  # a missing job is JobNotFound, not "no pods"
        which = f"{chosen} {index}" if index is not None else chosen
        raise JobNotFound(
            f"{api.ref(name)} has no {which} pod yet (not scheduled, or cleaned up); "
            f"`{api.command('status', name)}` shows why"
        )
    if follow and len(pods) > 1:
        raise typer.BadParameter(f"{len(pods)} {chosen} pods: follow one, pick it with --index 0..{len(pods) - 1}")
    names = sorted(p["metadata"]["name"] for p in pods)
    for pod in names:
        prefix = f"[{pod}] " if len(names) > 1 else ""
        for line in api.logs(pod, follow):
            print(f"{prefix}{line}", flush=follow)
