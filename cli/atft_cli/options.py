"""The options several verbs share, defined once so each means the same (and says so in --help) everywhere.

Run verbs (train, validate, data, predict): ``--config``, ``--set``, ``--overwrite``. Cluster verbs (submit,
status, logs, wait, delete, list): ``--kubeconfig``, ``--context``, ``-n``, ``--target`` and the backend they
build. Render and submit: the chart's ``--values``, ``--set``, ``--config`` and name options, and ``--target``
(passed to the chart as ``--set target=<target>``; without it the chart's value decides, pytorchjob unless a
values file says otherwise). Every verb that prints data: ``-o table|json|yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atft_cli.backends import BACKENDS, JobBackend
from atft_cli.k8s import Target
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
SeedsOpt = Annotated[str, typer.Option("--seeds", help="model seeds, comma-separated: every fold runs for each")]


def parse_seeds(text: str) -> list[int]:
    """``--seeds 0,1,2`` -> [0, 1, 2]; BadParameter (exit 2) unless distinct integers."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: expected comma-separated integers, e.g. 0,1,2", param_hint="--seeds"
        ) from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise typer.BadParameter(f"{text!r}: expected distinct integers, e.g. 0,1,2", param_hint="--seeds")
    return seeds


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
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="the job's name (`atft list` shows them)")]
# status and wait: one job by NAME, or every fold job of a validation by --validation ID
JobOrValidationArg = Annotated[
    str | None, typer.Argument(metavar="[NAME]", help="the job's name (`atft list` shows them); or --validation ID")
]
ValidationOpt = Annotated[
    str | None,
    typer.Option("--validation", metavar="ID", help="every fold job of validation ID (`atft submit --validate`)"),
]


def one_of(name: str | None, validation: str | None) -> None:
    """NAME or --validation ID, exactly one (BadParameter, exit 2, otherwise)."""
    if (name is None) == (validation is None):
        raise typer.BadParameter("give a job NAME or --validation ID, not both and not neither")


_TARGET_HELP = "the job kind: pytorchjob (Kubeflow training operator v1) | trainjob (Kubeflow Trainer v2)"
TargetOpt = Annotated[Target, typer.Option("--target", help=_TARGET_HELP)]
# render and submit: no default of their own, so a values file's `target` holds unless --target says otherwise
ChartTargetOpt = Annotated[
    Target | None,
    typer.Option("--target", help=f"{_TARGET_HELP}; default: the chart value `target` (pytorchjob unless -f sets it)"),
]
KubeconfigOpt = Annotated[
    str | None, typer.Option("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
]
ContextOpt = Annotated[str | None, typer.Option("--context", help="kubeconfig context (default: the current one)")]
NamespaceOpt = Annotated[
    str | None, typer.Option("--namespace", "-n", help="namespace (default: the context's, else 'default')")
]
TimeoutOpt = Annotated[str, typer.Option("--timeout", help="give up after this long: 90s, 30m, 2h, 1d6h")]


def backend(target: Target, kubeconfig: str | None, context: str | None, namespace: str | None) -> JobBackend:
    """The cluster client the four cluster options select: the job kind, the kubeconfig, its context, the namespace."""
    return BACKENDS[target](kubeconfig=kubeconfig, context=context, namespace=namespace)


def chart_sets(sets: list[str] | None, target: Target | None) -> list[str]:
    """``--set`` values for the chart, then ``target=<target>`` when ``--target`` was given: the option wins over
    the values files and any ``--set target=`` before it; without it the chart's value (and the files) decide."""
    return [*(sets or []), *([f"target={target}"] if target is not None else [])]
