"""``atft render``: the manifests a cluster runs, from a run config and chart values, through the real Helm engine.

The output is deterministic (objects in apply order, keys sorted), so it can be diffed, committed for GitOps and
piped to ``kubectl apply -f -``.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from atft_cli.output import hint
from atft_cli.render import default_name, render_manifests, to_text


class RenderFormat(StrEnum):
    yaml = "yaml"
    json = "json"


ValuesOpt = Annotated[
    list[Path] | None,
    typer.Option("--values", "-f", metavar="FILE", help="chart values file (helm -f), repeatable, applied in order"),
]
ChartSetOpt = Annotated[
    list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help="chart value (helm --set syntax), repeatable")
]
RenderConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", metavar="FILE", help="atft run config for the ConfigMap (default configs/demo.yaml)"
    ),
]
NameOpt = Annotated[
    str | None,
    typer.Option("--name", metavar="NAME", help="job (release) name; default atft-<config stem>; run dir /runs/NAME"),
]


def render(
    config: RenderConfigOpt = None,
    values: ValuesOpt = None,
    sets: ChartSetOpt = None,
    name: NameOpt = None,
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", metavar="NS", help="namespace of every object")
    ] = "default",
    output: Annotated[RenderFormat, typer.Option("--output", "-o", help="yaml | json")] = RenderFormat.yaml,
) -> None:
    """Render the PyTorchJob and its objects (sorted, byte-identical across runs); pipe to `kubectl apply -f -`."""
    job = name or default_name(config)
    objs = render_manifests(config, values or [], sets or [], job, namespace)
    sys.stdout.write(to_text(objs, output.value))
    hint(f"{len(objs)} objects; apply with: atft submit (same options), or pipe to `kubectl apply -f -`")
