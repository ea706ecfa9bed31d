"""``atft submit``: render the chart, then create its objects in the cluster; ``--dry-run`` calls no API.

The objects say ``app.kubernetes.io/managed-by: atft``: atft creates them, no Helm release exists to manage
them (``atft render`` keeps Helm's label: it prints what ``helm template`` prints).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from atft_cli.commands.wait import follow, parse_duration
from atft_cli.k8s import resolve_namespace
from atft_cli.options import (
    ChartSetOpt,
    ContextOpt,
    KubeconfigOpt,
    NameHashOpt,
    NamespaceOpt,
    RenderConfigOpt,
    ResultOpt,
    TimeoutOpt,
    ValuesOpt,
    backend,
)
from atft_cli.output import emit, hint, info

MANAGER = "atft"


def submit(
    config: RenderConfigOpt = None,
    values: ValuesOpt = None,
    sets: ChartSetOpt = None,
    name: Annotated[str | None, typer.Option("--name", help="job name; default atft-<config stem>")] = None,
    name_hash: NameHashOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the manifests and the plan; no API call")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="then follow the job; exit 1 if it fails")] = False,
    timeout: TimeoutOpt = "2h",
    output: ResultOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Render the chart for CONFIG and create the objects (the PyTorchJob last) in the namespace.

    Progress goes to stderr. With -o stdout gets the objects created (kind, namespace, name) as soon as they
    exist, --wait or not; without it a --dry-run prints the manifests it would send, and a real submit prints
    nothing on stdout (with --wait: `NS/NAME: Succeeded` at the end).

    Examples:

      atft submit --config debug -f cpu-smoke-values.yaml --name smoke-1 -n research --dry-run
      atft submit --config prod-20ep --set gpusPerPod=8 --set workers=1 --name prod-a -n research
      atft submit --config prod-20ep --name prod --name-hash -n research -o json   # the job name for scripts
      atft submit --config debug --name smoke-1 -n research --wait --timeout 30m   # exit 1 if the job fails
    """
    from atft_cli.render import default_name, hashed_name, managed_by, render_manifests, to_text

    seconds = parse_duration(timeout)  # a bad --timeout fails before anything is created
    ns = resolve_namespace(kubeconfig, context, namespace)
    job_name = name or default_name(config)
    if name_hash:  # the name `atft render --name-hash` gives for the same options
        job_name = hashed_name(config, values or [], sets or [], job_name, ns)
    objs = managed_by(render_manifests(config, values or [], sets or [], job_name, ns), MANAGER)
    rows = [{"kind": o["kind"], "namespace": ns, "name": o["metadata"]["name"]} for o in objs]
    if dry_run:
        if output is None:
            print(to_text(objs), end="")
        else:
            emit(rows, output, title=f"would create in {ns}")
        for row in rows:
            info(f"would create {row['kind']} {ns}/{row['name']}")
        hint("dry run: nothing was sent to the cluster; drop --dry-run to submit")
        return
    api = backend(kubeconfig, context, ns)
    job = api.create(objs, info)
    if output is not None:
        emit(rows, output, title=f"created in {ns}")
        sys.stdout.flush()  # a script reading stdout gets the job's name now, not after --wait
    if not wait:
        hint(f"next: `atft status {job} -n {ns}`, `atft logs {job} -f -n {ns}`, `atft wait {job} -n {ns}`")
        return
    follow(api, job, seconds)
    if output is None:
        print(f"{ns}/{job}: Succeeded")
