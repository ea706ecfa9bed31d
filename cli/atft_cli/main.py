"""Entry point of ``atft``: the single place where exceptions become messages and exit codes.

Exit codes: 0 ok, 1 the job ran and failed, 2 bad input (config, data, arguments), 3 timed out,
4 the cluster could not be reached or answered with a server error (retryable).
Library errors (:class:`atft.errors.AtftError`) print one message (and a hint) without a traceback;
``ATFT_DEBUG=1`` shows the traceback too. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import traceback
from typing import Annotated

import typer
from rich.text import Text

from atft import __version__
from atft.errors import AtftError
from atft_cli.commands import (
    data,
    delete,
    exporter,
    list_jobs,
    logs,
    predict,
    render,
    report,
    status,
    submit,
    train,
    validate,
    wait,
)
from atft_cli.output import hint, stderr

app = typer.Typer(
    name="atft",
    help="Train ATFT-GAT-FAN stock-return models honestly: data, training, reports, cluster jobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
)
app.add_typer(data.app, name="data")
app.command("render")(render.render)
app.command("report")(report.report)
app.command("train")(train.train)
app.command("validate")(validate.validate)
app.command("predict")(predict.predict)
app.command("submit")(submit.submit)
app.command("status")(status.status)
app.command("logs")(logs.logs)
app.command("wait")(wait.wait)
app.command("delete")(delete.delete)
app.command("list")(list_jobs.list_jobs)
app.command("exporter")(exporter.exporter)


def _print_version(value: bool) -> None:
    if value:
        print(f"atft {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """The options of ``atft`` itself, before the verb (``--version``); each verb has its own."""


_HINTS = {
    "ConfigError": "run with --help, or compare with configs/demo.yaml, which documents every key",
    "DataContractError": "`atft data check PANEL` lists every contract problem of a panel",
    "OutputExistsError": "choose another --out; --overwrite replaces only a file or run directory atft wrote",
    "ToolMissingError": "python3 scripts/fetch_helm.py installs the pinned helm at .tools/bin/helm",
    "ChartError": "helm/atft/values.yaml documents every chart value; ci/*-values.yaml has working examples",
    "RenderDrift": "scripts/gitops_render.sh re-renders every k8s/rendered/ file; commit them with the change",
    "ObjectivesFailed": "open the run's report.md for the objectives table and what each measured",
}


def main() -> None:
    """Run the CLI; map :class:`AtftError` to its exit code and a one-screen message."""
    try:
        app()
    except AtftError as exc:
        if os.environ.get("ATFT_DEBUG") == "1":
            traceback.print_exc()
        stderr.print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False)
        if (text := _HINTS.get(type(exc).__name__)) is not None:
            hint(text)
        raise SystemExit(exc.exit_code) from None
