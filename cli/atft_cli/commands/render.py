"""``atft render``: the manifests a cluster runs, from a run config and chart values, through the real Helm engine.

The output is deterministic (objects in apply order, keys sorted), so it can be diffed, committed for GitOps and
piped to ``kubectl apply -f -``. ``--check FILE`` is the drift check of a committed render (k8s/rendered/, exit 1
with the diff); ``--name-hash`` names the job after what it runs, so a changed config or value is a new job.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from atft_cli.options import ChartSetOpt, ChartTargetOpt, NameHashOpt, RenderConfigOpt, ValuesOpt, chart_sets
from atft_cli.output import hint
from atft_cli.render import RenderDrift, default_name, drift, hashed_name, render_manifests, to_text


class RenderFormat(StrEnum):
    yaml = "yaml"
    json = "json"


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
    name_hash: NameHashOpt = False,
    target: ChartTargetOpt = None,
    check: Annotated[
        Path | None,
        typer.Option(
            "--check", metavar="FILE", help="compare with a committed render instead of printing; exit 1 + diff"
        ),
    ] = None,
) -> None:
    """Render the job (a PyTorchJob, or a TrainJob with --target trainjob) and its objects; pipe to `kubectl apply`.

    The output is sorted and byte-identical across runs. --target sets the chart value `target` (else the values
    files' or the chart's default, pytorchjob).

    Examples:

      atft render                                                # the demo config, default values: YAML on stdout
      atft render --config prod-20ep --set gpusPerPod=8 --set workers=1 --name prod-a -n research
      atft render --config configs/mine.yaml -f values.yaml -o json
      atft render --config prod-20ep -n research | kubectl apply -f -
      atft render --config prod-20ep -n research --check rendered.yaml     # exit 1 and the diff when it differs
      atft render --config prod-20ep --set gpusPerPod=8 --target trainjob -n research   # a Kubeflow Trainer v2 TrainJob
    """
    chart = chart_sets(sets, target)
    job = name or default_name(config)
    if name_hash:
        job = hashed_name(config, values or [], chart, job, namespace)
    objs = render_manifests(config, values or [], chart, job, namespace)
    text = to_text(objs, output.value)
    if check is None:
        sys.stdout.write(text)
        hint(f"{len(objs)} objects; apply with: atft submit (same options), or pipe to `kubectl apply -f -`")
        return
    if diff := drift(check, text):
        sys.stdout.write(diff)
        changed = sum(1 for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---"))
        raise RenderDrift(
            f"{check}: differs from a fresh render ({changed} lines changed; diff on stdout): the chart, values or "
            "config changed without re-rendering; run the same command without --check, writing to the file"
        )
    hint(f"{check}: up to date ({len(objs)} objects)")
