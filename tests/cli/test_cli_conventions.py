"""What users expect of a CLI: --version, shell completion, examples in every verb's help that actually parse,
and shipped configs nameable without a path (``--config debug``)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from processes import run_cli
from typer.testing import CliRunner

import atft
from atft.errors import InputFileError
from atft_cli.main import app
from atft_cli.resources import resolve_config, shipped_configs, shipped_dir

ROOT = Path(__file__).resolve().parents[2]
# The verbs whose help must show examples (validate, report, train, predict document their own).
VERBS = ["render", "submit", "status", "logs", "wait", "delete", "list", "exporter", "data",
         "data synth", "data build", "data check", "data splits"]  # fmt: skip


def command(path: str) -> Any:
    """The Click command behind ``atft PATH`` (Typer builds it; walking it needs no click import)."""
    cmd = typer.main.get_command(app)
    for part in path.split():
        cmd = cmd.commands[part]  # type: ignore[attr-defined]
    return cmd


def examples(help_text: str) -> list[list[str]]:
    """The ``atft ...`` command lines after ``Examples:``, as argument lists (comments and pipes cut off)."""
    _, found, block = help_text.partition("Examples:")
    assert found, "no Examples: block"
    lines = [line.strip() for line in block.splitlines()]
    return [shlex.split(line.split(" | ")[0], comments=True)[1:] for line in lines if line.startswith("atft ")]


def test_version_is_the_library_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"atft {atft.__version__}\n"


def test_completion_completes_verbs_and_subcommands() -> None:
    """The protocol the installed completion script speaks (`atft --install-completion` writes that script)."""
    runner = CliRunner()
    for words, cword, expected in (("atft sub", "1", ["submit"]), ("atft data s", "2", ["synth", "splits"])):
        env = {"_ATFT_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword}
        done = runner.invoke(app, [], prog_name="atft", env=env)
        assert done.exit_code == 0, done.output
        assert done.output.split() == expected
    assert "--install-completion" in runner.invoke(app, ["--help"], prog_name="atft").output


@pytest.mark.parametrize("verb", VERBS)
def test_help_has_examples_that_parse(verb: str) -> None:
    """Each example in the help names real options with valid values: the real command parses it."""
    shown = CliRunner().invoke(app, [*verb.split(), "--help"], prog_name="atft", env={"COLUMNS": "200"}).output
    assert "Examples:" in shown, shown
    lines = examples(command(verb).help or "")
    assert lines, f"atft {verb}: no example lines"
    for args in lines:
        name = parse(args)  # raises on an unknown option or a bad value
        assert name == f"atft {verb}" or (verb == "data" and name.startswith("atft data ")), (name, args)


def parse(args: list[str]) -> str:
    """Parse ``atft ARGS`` with the real command (no invocation); returns the command's full name."""
    cmd, name = typer.main.get_command(app), "atft"
    while hasattr(cmd, "commands") and args and args[0] in cmd.commands:
        cmd, name, args = cmd.commands[args[0]], f"{name} {args[0]}", args[1:]
    cmd.make_context(name, args)
    return name


def test_config_by_name_resolves_to_the_shipped_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shipped = shipped_dir("configs")
    assert shipped == ROOT / "configs", "in a checkout the shipped configs are the repository's"
    assert resolve_config(Path("debug")) == resolve_config(Path("debug.yaml")) == shipped / "debug.yaml"
    assert set(shipped_configs()) >= {"debug", "demo", "prod-20ep"}
    (tmp_path / "debug").write_text("seed: 3\n")
    assert resolve_config(Path("debug")) == Path("debug"), "a file in the working directory wins"
    assert resolve_config(Path("sub/demo")) == Path("sub/demo"), "a path is the user's, found or not"
    assert resolve_config(None) is None
    with pytest.raises(InputFileError, match=r"--config nope: no such file, and no shipped config .*: debug, demo"):
        resolve_config(Path("nope"))


def test_verbs_take_a_shipped_config_by_name(tmp_path: Path) -> None:
    done = run_cli("data", "synth", "--config", "debug", "--out", "panel.parquet", "-o", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stocks"] == 48, "configs/debug.yaml's synth.n_stocks, not the default's"
    typo = run_cli("data", "synth", "--config", "debgu", "--out", "panel.parquet", cwd=tmp_path)
    assert typo.returncode == 2 and typo.stdout == ""
    assert typo.stderr.startswith("error: --config debgu: no such file, and no shipped config of that name; shipped:")
    assert "Traceback" not in typo.stderr
