"""``--target pytorchjob|trainjob``: the same option and help on every cluster verb; a bad value is a usage error
naming the allowed values, before any render or API call; render and submit pass it to the chart last."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from atft_cli.k8s import Target
from atft_cli.main import app
from atft_cli.options import chart_sets

VERBS = {"render": [], "submit": [], "status": ["demo"], "logs": ["demo"], "wait": ["demo"], "delete": ["demo"],
         "list": []}  # fmt: skip
WIDE = {"COLUMNS": "200"}  # no help line or error box cut to the test's terminal


@pytest.mark.parametrize("verb", VERBS)
def test_every_cluster_verb_has_the_target_option(verb: str) -> None:
    """Render and submit default to the chart's value (a values file may set it), the other verbs to pytorchjob."""
    (param,) = [p for p in typer.main.get_command(app).commands[verb].params if p.name == "target"]  # type: ignore[attr-defined]
    assert param.opts == ["--target"]
    assert param.default == (None if verb in ("render", "submit") else Target.pytorchjob)
    shown = CliRunner().invoke(app, [verb, "--help"], prog_name="atft", env=WIDE).output
    assert "--target" in shown and "pytorchjob|trainjob" in shown and "Kubeflow Trainer v2" in shown
    assert ("default: the chart value `target`" in shown) == (verb in ("render", "submit"))


@pytest.mark.parametrize("verb", VERBS)
def test_a_bad_target_is_exit_2_with_the_allowed_values(verb: str, tmp_path: Path) -> None:
    cluster = ["--kubeconfig", str(tmp_path / "none")] if verb != "render" else []  # never read: parsing fails first
    done = CliRunner().invoke(app, [verb, *VERBS[verb], "--target", "tfjob", *cluster], prog_name="atft", env=WIDE)
    assert done.exit_code == 2, done.output
    assert "Invalid value for '--target'" in done.output
    assert "'tfjob' is not one of 'pytorchjob', 'trainjob'" in done.output


def test_chart_sets_put_the_target_last_so_it_wins_over_values_files_and_sets() -> None:
    assert chart_sets(["workers=1", "target=trainjob"], Target.pytorchjob) == [
        "workers=1", "target=trainjob", "target=pytorchjob"
    ]  # fmt: skip
    assert chart_sets(["workers=1"], None) == ["workers=1"]  # no --target: the values files and the chart decide
    assert chart_sets(None, Target.trainjob) == ["target=trainjob"]
