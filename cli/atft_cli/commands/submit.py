"""``atft submit``: render the chart, then create its objects in the cluster; ``--dry-run`` calls no API.

The objects say ``app.kubernetes.io/managed-by: atft``: atft creates them, no Helm release exists to manage
them (``atft render`` keeps Helm's label: it prints what ``helm template`` prints).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from atft_cli.backends import target_of
from atft_cli.commands.wait import follow, parse_duration
from atft_cli.k8s import Target, resolve_namespace
from atft_cli.options import (
    ChartSetOpt,
    ChartTargetOpt,
    ContextOpt,
    KubeconfigOpt,
    NameHashOpt,
    NamespaceOpt,
    RenderConfigOpt,
    ResultOpt,
    SeedsOpt,
    TimeoutOpt,
    ValuesOpt,
    backend,
    chart_sets,
    parse_seeds,
)
from atft_cli.output import Format, emit, hint, info
from atft_cli.render import managed_by, render_manifests

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
    target: ChartTargetOpt = None,
    validate: Annotated[
        bool,
        typer.Option(
            "--validate",
            help="a walk-forward validation: one job per fold and seed, NAME-fKK-sS, labelled "
            "atft.dev/validation-id=NAME (docs/gitops.md, Validations as fan-outs)",
        ),
    ] = False,
    folds: Annotated[
        int | None, typer.Option("--folds", min=1, help="with --validate: the fold count; default split.n_folds")
    ] = None,
    seeds: SeedsOpt = "0",
    report_only: Annotated[
        bool,
        typer.Option(
            "--report-only",
            help="with --validate: only the report Job, pooling the fold runs of validation NAME on the runs volume",
        ),
    ] = False,
) -> None:
    """Render the chart for CONFIG and create the objects (the job last) in the namespace.

    The job is a PyTorchJob, or with --target trainjob (or a values file's `target: trainjob`) a Kubeflow Trainer
    v2 TrainJob; the verbs after it take the same --target.

    Progress goes to stderr. With -o stdout gets the objects created (kind, namespace, name) as soon as they
    exist, --wait or not; without it a --dry-run prints the manifests it would send, and a real submit prints
    nothing on stdout (with --wait: `NS/NAME: Succeeded` at the end).

    Examples:

      atft submit --config debug -f cpu-smoke-values.yaml --name smoke-1 -n research --dry-run
      atft submit --config prod-20ep --set gpusPerPod=8 --set workers=1 --name prod-a -n research
      atft submit --config prod-20ep --name prod --name-hash -n research -o json   # the job name for scripts
      atft submit --config debug --name smoke-1 -n research --wait --timeout 30m   # exit 1 if the job fails
      atft submit --config prod-20ep --set gpusPerPod=8 --name prod-t --target trainjob -n research
      atft submit --validate --config sp500 -f values.yaml --name wf-1 -n research --wait   # one job per fold
      atft submit --validate --report-only --config sp500 -f values.yaml --name wf-1 -n research   # pooled report
    """
    from atft_cli.render import default_name, hashed_name, to_text

    seconds = parse_duration(timeout)  # a bad --timeout fails before anything is created
    cluster = (kubeconfig, context)
    chart = chart_sets(sets, target)
    ns = resolve_namespace(kubeconfig, context, namespace)
    job_name = name or default_name(config)
    if validate or report_only or folds is not None:
        if not validate:
            raise typer.BadParameter("--folds and --report-only go with --validate")
        if name_hash or (report_only and wait):
            raise typer.BadParameter("--validate takes neither --name-hash (its jobs are NAME-fKK-sS) nor, with "
                                     "--report-only, --wait (follow the report Job with kubectl)")  # fmt: skip
        plan = _validation_releases(config, job_name, folds, parse_seeds(seeds), report_only)
        renders = [managed_by(render_manifests(config, values or [], [*chart, *extra], release, ns), MANAGER)
                   for release, extra in plan]  # fmt: skip
        _submit_validation(renders, job_name, ns, dry_run, wait, seconds, output, report_only, target, cluster)
        return
    if name_hash:  # the name `atft render --name-hash` gives for the same options
        job_name = hashed_name(config, values or [], chart, job_name, ns)
    objs = managed_by(render_manifests(config, values or [], chart, job_name, ns), MANAGER)
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
    api = backend(target or target_of(objs), kubeconfig, context, ns)
    job = api.create(objs, info)
    if output is not None:
        emit(rows, output, title=f"created in {ns}")
        sys.stdout.flush()  # a script reading stdout gets the job's name now, not after --wait
    if not wait:
        steps = (api.command("status", job), api.command("logs", job, "-f"), api.command("wait", job))
        hint("next: " + ", ".join(f"`{step}`" for step in steps))
        return
    follow(api, job, seconds)
    if output is None:
        print(f"{ns}/{job}: Succeeded")


def _validation_releases(
    config: Path | None, validation: str, folds: int | None, seeds: list[int], report_only: bool
) -> list[tuple[str, list[str]]]:
    """(release name, chart values) of each job of the validation: every fold x seed, or its report Job."""
    from atft.config import load_config
    from atft_cli.render import DEFAULT_CONFIG
    from atft_cli.validation import fold_count, fold_jobs, report_sets

    if report_only:
        return [(f"{validation}-report", report_sets(validation, seeds))]
    source = config or DEFAULT_CONFIG
    split = load_config(source, [], environ={}).split
    known = split.n_folds if split.n_folds is not None or split.test_window == "year" else 1
    n_folds = fold_count(folds, known, str(source))
    return [(job.name, job.chart_sets) for job in fold_jobs(validation, n_folds, seeds)]


def _submit_validation(
    renders: list[list[dict[str, Any]]],
    validation: str,
    ns: str,
    dry_run: bool,
    wait: bool,
    seconds: float,
    output: Format | None,
    report_only: bool,
    target: Target | None,
    cluster: tuple[str | None, str | None],
) -> None:
    """Create every rendered job of a validation (or print them with --dry-run), then follow them with --wait."""
    from atft_cli.render import to_text
    from atft_cli.validation import counts, wait_all

    rows = [{"kind": o["kind"], "namespace": ns, "name": o["metadata"]["name"]} for objs in renders for o in objs]
    if dry_run:
        if output is None:
            print("".join(to_text(objs) for objs in renders), end="")
        else:
            emit(rows, output, title=f"would create in {ns}")
        for row in rows:
            info(f"would create {row['kind']} {ns}/{row['name']}")
        hint("dry run: nothing was sent to the cluster; drop --dry-run to submit")
        return
    api = backend(target or target_of(renders[0]), *cluster, ns)
    for objs in renders:
        if report_only:
            api.create_plain(objs, info)
        else:
            api.create(objs, info)
    if output is not None:
        emit(rows, output, title=f"created in {ns}")
        sys.stdout.flush()
    following = api.command("status", extra=f"--validation {validation}")
    if report_only:
        logs = f"kubectl logs job/{validation}-report -n {ns}"
        hint(f"the report lands in the runs volume's {validation}/report.md; `{logs}` shows its progress")
        return
    if not wait:
        hint(f"next: `{following}`, `{api.command('wait', extra=f'--validation {validation}')}`")
        return
    done = wait_all(api, validation, seconds, lambda found: info(f"validation {validation}: {counts(found)}"))
    if output is None:
        print(f"{ns}/{validation}: {len(done)} fold jobs Succeeded")
