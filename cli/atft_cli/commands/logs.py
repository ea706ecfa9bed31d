"""``atft logs NAME``: the training container's log of one replica (default: the first), optionally followed.

Which pods: a PyTorchJob's ``--replica`` is master (default) or worker, its ``--index`` the replica index; a
TrainJob's is node (its only replicated job), its ``--index`` the node rank (the Job completion index). Without
``--index`` every pod of the replica is printed, each line prefixed with its pod; with ``-f`` every one of them
is followed at once (one stream per pod, lines printed as they arrive) until the last container ends: a
multi-node job stalls or fails on any rank, and the user should not have to guess which.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Annotated

import typer

from atft_cli.backends import JobBackend
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
      atft logs smoke-t --target trainjob -f -n research         # every node followed at once, prefixed
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
    names = sorted(p["metadata"]["name"] for p in pods)
    if follow and len(names) > 1:
        for pod, line in _follow_all(api, names):
            print(f"[{pod}] {line}", flush=True)
        return
    for pod in names:
        prefix = f"[{pod}] " if len(names) > 1 else ""
        for line in api.logs(pod, follow):
            print(f"{prefix}{line}", flush=follow)


_DONE = object()


def _follow_all(api: JobBackend, pods: list[str]) -> Iterator[tuple[str, str]]:
    """(pod, line) from every pod's followed log as the lines arrive, until every stream has ended.

    One thread per pod reads its stream into a queue; the first error of any stream is raised here once the
    others have ended, so nothing a stream says is lost and no failure is swallowed.
    """
    lines: queue.Queue[tuple[str, object]] = queue.Queue()
    errors: list[BaseException] = []

    def read(pod: str) -> None:
        try:
            for line in api.logs(pod, True):
                lines.put((pod, line))
        except BaseException as exc:  # handed to the main thread, raised there
            errors.append(exc)
        finally:
            lines.put((pod, _DONE))

    for pod in pods:
        threading.Thread(target=read, args=(pod,), name=f"logs-{pod}", daemon=True).start()
    open_streams = len(pods)
    while open_streams:
        pod, line = lines.get()
        if line is _DONE:
            open_streams -= 1
        else:
            yield pod, str(line)
    if errors:
        raise errors[0]
