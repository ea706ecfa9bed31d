"""``atft submit``: render the chart, then create its objects in the cluster; ``--dry-run`` calls no API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atft_cli.commands.render import ChartSetOpt, NameHashOpt, ValuesOpt
from atft_cli.commands.status import ContextOpt, KubeconfigOpt, NamespaceOpt, backend
from atft_cli.commands.wait import TimeoutOpt, follow, parse_duration
from atft_cli.k8s import resolve_namespace
from atft_cli.output import hint, info


def submit(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="atft run config shipped in the ConfigMap [configs/demo.yaml]")
    ] = None,
    values: ValuesOpt = None,
    sets: ChartSetOpt = None,
    name: Annotated[str | None, typer.Option("--name", help="job name; default atft-<config stem>")] = None,
    name_hash: NameHashOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the manifests and the plan; no API call")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="then follow the job; exit 1 if it fails")] = False,
    timeout: TimeoutOpt = "2h",
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Render the chart for CONFIG and create the objects (the PyTorchJob last) in the namespace."""
    from atft_cli.render import default_name, hashed_name, render_manifests, to_text

    seconds = parse_duration(timeout)  # a bad --timeout fails before anything is created
    ns = resolve_namespace(kubeconfig, context, namespace)
    job_name = name or default_name(config)
    if name_hash:  # the name `atft render --name-hash` gives for the same options
        job_name = hashed_name(config, values or [], sets or [], job_name, ns)
    objs = render_manifests(config, values or [], sets or [], job_name, ns)
    if dry_run:
        print(to_text(objs), end="")
        for obj in objs:
            info(f"would create {obj['kind']} {ns}/{obj['metadata']['name']}")
        hint("dry run: nothing was sent to the cluster; drop --dry-run to submit")
        return
    api = backend(kubeconfig, context, ns)
    job = api.create(objs, info)
    if not wait:
        hint(f"next: `atft status {job} -n {ns}`, `atft logs {job} -f -n {ns}`, `atft wait {job} -n {ns}`")
        return
    follow(api, job, seconds)
    print(f"{ns}/{job}: Succeeded")
