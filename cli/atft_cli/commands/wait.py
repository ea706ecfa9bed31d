"""``atft wait NAME``: block until the job ends; exit 0 when it succeeded, 1 when it failed, 3 on timeout."""

from __future__ import annotations

import re
from typing import Any

import typer

from atft_cli.backends import JobBackend
from atft_cli.commands.status import describe, head
from atft_cli.k8s import DEFAULT_TARGET
from atft_cli.options import (
    ContextOpt,
    JobOrValidationArg,
    KubeconfigOpt,
    NamespaceOpt,
    ResultOpt,
    TargetOpt,
    TimeoutOpt,
    ValidationOpt,
    backend,
    one_of,
)
from atft_cli.output import Format, emit, info

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> float:
    """``1d2h3m4s`` (any part optional) or plain seconds -> seconds; BadParameter (exit 2) otherwise."""
    if text.isdigit():
        return float(text)
    match = _DURATION.match(text)
    if not text or match is None or not any(match.groups()):
        raise typer.BadParameter(f"{text!r}: expected a duration such as 90s, 30m, 2h or 1d6h", param_hint="--timeout")
    d, h, m, s = (int(g or 0) for g in match.groups())
    return float(((d * 24 + h) * 60 + m) * 60 + s)


def follow(api: JobBackend, name: str, timeout_s: float) -> dict[str, Any]:
    """Stream each state change to stderr until the job ends (shared with ``submit --wait``)."""

    def show(job: dict[str, Any]) -> None:
        record = describe(api, job, [])
        replicas = ", ".join(f"{r} {c['active']}/{c['succeeded']}/{c['failed']}" for r, c in record["replicas"].items())
        info(
            f"{record['namespace']}/{record['name']}: {record['state']}"
            + (f" ({replicas} active/ok/failed)" if replicas else "")
        )

    return api.wait(name, timeout_s, show)


def wait(
    name: JobOrValidationArg = None,
    timeout: TimeoutOpt = "2h",
    output: ResultOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    target: TargetOpt = DEFAULT_TARGET,
    validation: ValidationOpt = None,
) -> None:
    """Wait for the PyTorchJob (or TrainJob) to finish. Exit codes: 0 succeeded, 1 failed, 3 timed out.

    With --validation ID it waits until every fold job of the validation has ended, then exits 1 if any failed
    (each named); stdout gets `NS/ID: N fold jobs Succeeded`, or with -o the rows `atft status --validation` shows.

    Each state change goes to stderr. On success stdout gets `NS/NAME: Succeeded`, or with -o the job's final
    status record (the one `atft status -o json` prints).

    Examples:

      atft wait smoke-1 -n research                        # exit 0 succeeded, 1 failed, 3 timed out
      atft wait smoke-1 -n research --timeout 30m
      atft wait smoke-1 -n research -o json | jq .state    # the final status as data
      atft wait smoke-t --target trainjob -n research       # a Kubeflow Trainer v2 TrainJob
      atft wait --validation wf-1 -n research --timeout 2d  # every fold job of a validation
    """
    one_of(name, validation)
    seconds = parse_duration(timeout)
    api = backend(target, kubeconfig, context, namespace)
    if validation is not None:
        from atft_cli.validation import counts, wait_all

        rows = wait_all(api, validation, seconds, lambda found: info(f"validation {validation}: {counts(found)}"))
        if output is None:
            print(f"{api.namespace}/{validation}: {len(rows)} fold jobs Succeeded")
        else:
            emit(rows, output, title=f"validation {validation} in {api.namespace}")
        return
    assert name is not None
    job = follow(api, name, seconds)
    if output is None:
        print(f"{api.namespace}/{name}: Succeeded")
        return
    record = describe(api, job, api.pods(name))
    emit(head(record) if output is Format.table else record, output, title=api.ref(name))
