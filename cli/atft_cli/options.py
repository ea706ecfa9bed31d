"""The options several verbs share, defined once so each means the same (and says so in --help) everywhere.

Run verbs (train, validate, data, predict): ``--config``, ``--set``, ``--overwrite``. Cluster verbs (submit,
status, logs, wait, delete, list): ``--kubeconfig``, ``--context``, ``-n`` and the backend they build.
Render and submit: the chart's ``--values``, ``--set``, ``--config`` and name options. Every verb that prints
data: ``-o table|json|yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atft_cli.k8s import JobBackend
from atft_cli.output import Format
from atft_cli.resources import resolve_config

# -- run verbs --------------------------------------------------------------------------------------------------
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        callback=resolve_config,
        help="run config: a YAML file, or a shipped config by name (debug, demo, prod-20ep, ...); "
        "default: the built-in defaults",
    ),
]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="dotted override KEY=VALUE, repeatable")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="replace an existing output file")]

# -- output -----------------------------------------------------------------------------------------------------
OutputOpt = Annotated[Format, typer.Option("--output", "-o", help="table | json | yaml")]
# submit, wait and delete report progress on stderr; -o also prints what they did as data on stdout.
ResultOpt = Annotated[
    Format | None,
    typer.Option("--output", "-o", help="table | json | yaml: also print the result on stdout (see Examples)"),
]

# -- chart (render, submit) -------------------------------------------------------------------------------------
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
        "--config",
        "-c",
        metavar="FILE|NAME",
        callback=resolve_config,
        help="atft run config for the ConfigMap: a file, or a shipped config by name (default: demo)",
    ),
]
NameHashOpt = Annotated[
    bool,
    typer.Option("--name-hash", help="append -<8 hex> of the manifests' sha256 to the name: a change is a new job"),
]

# -- cluster verbs ----------------------------------------------------------------------------------------------
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="the PyTorchJob's name (`atft list` shows them)")]
KubeconfigOpt = Annotated[
    str | None, typer.Option("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
]
ContextOpt = Annotated[str | None, typer.Option("--context", help="kubeconfig context (default: the current one)")]
NamespaceOpt = Annotated[
    str | None, typer.Option("--namespace", "-n", help="namespace (default: the context's, else 'default')")
]
TimeoutOpt = Annotated[str, typer.Option("--timeout", help="give up after this long: 90s, 30m, 2h, 1d6h")]


def backend(kubeconfig: str | None, context: str | None, namespace: str | None) -> JobBackend:
    """The cluster client the three cluster options select."""
    return JobBackend(kubeconfig=kubeconfig, context=context, namespace=namespace)
