"""CLI output without a terminal (a pipe, a pod's log, CI): complete plain lines; with one, rich tables."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from processes import run_cli

from atft.runs.files import write_parquet
from atft_cli.output import Format, emit, hint, plain_table
from factories import make_panel_table

LONG = "feat_flow_imbalance_with_a_name_far_longer_than_a_narrow_terminal_column"
ROWS = [
    {"feature": LONG, "dead_dates": 0.0, "ic_5d": 0.031234567, "note": "two\nlines"},
    {"feature": "ret_1d", "dead_dates": 1.0, "ic_5d": -0.0021, "note": "[bold]kept[/bold]"},
]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_table_without_a_terminal_is_aligned_text_with_every_cell_whole(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "30")
    monkeypatch.setenv("FORCE_COLOR", "1")  # must not turn a pipe into a terminal
    emit(ROWS, Format.table, title="panel.parquet: 2 features")
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "panel.parquet: 2 features",
        "feature" + " " * (len(LONG) - 7) + "  dead_dates    ic_5d  note",
        LONG + "           0  0.03123  two lines",
        "ret_1d" + " " * (len(LONG) - 6) + "           1  -0.0021  [bold]kept[/bold]",
    ]
    assert "\x1b[" not in out and "…" not in out


def test_table_on_a_terminal_stays_a_rich_table(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stdout", terminal)
    monkeypatch.setenv("COLUMNS", "200")
    emit(ROWS, Format.table, title="t")
    out = terminal.getvalue()
    assert out.startswith("\x1b[3mt\x1b[0m\n┏━━") and "feature" in out  # the rich box, not the plain layout


def test_plain_table_of_no_rows_is_its_title() -> None:
    assert plain_table([], "PyTorchJobs in ns") == "PyTorchJobs in ns"


def test_hint_is_one_plain_line_keeping_brackets(capsys: pytest.CaptureFixture) -> None:
    hint("compare with [configs/demo.yaml]")
    assert capsys.readouterr().err == "hint: compare with [configs/demo.yaml]\n"


@pytest.fixture(scope="module")
def dead_panel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A panel whose second feature, with a long name, is constant: a contract violation."""
    table = make_panel_table(n_days=60)
    i = table.schema.get_field_index("feat_f1")
    table = table.set_column(i, LONG, pa.array(np.ones(table.num_rows, dtype=np.float32)))
    path = tmp_path_factory.mktemp("output") / "dead.parquet"
    write_parquet(table, path)
    return path


NARROW_COLOURED = {"COLUMNS": "40", "FORCE_COLOR": "1"}  # what would cut or colour a piped table
CHECK = ["--set", "data.horizons=[1,5]", "--set", "train.select_horizon=5", "--set", "report.horizon=5"]


def test_data_check_piped_prints_complete_rows_and_the_violation(dead_panel: Path) -> None:
    done = run_cli("data", "check", dead_panel, *CHECK, env=NARROW_COLOURED)
    assert done.returncode == 2
    assert "\x1b[" not in done.stdout + done.stderr and "…" not in done.stdout
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{dead_panel}: ") and lines[1].split() == [
        "feature",
        "dead_dates",
        "missing",
        "ic_1d",
        "ic_5d",
    ]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert set(rows) == {"f0", LONG.removeprefix("feat_"), "f2", "f3"}
    assert all(len(cells) == 4 for cells in rows.values()) and rows[LONG.removeprefix("feat_")][0] == "1"
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"column '{LONG}' is dead" in errors[0]


def test_data_check_json_is_complete(dead_panel: Path) -> None:
    done = run_cli("data", "check", dead_panel, *CHECK, "-o", "json", env=NARROW_COLOURED)
    assert done.returncode == 2
    rows = json.loads(done.stdout)
    assert [r["feature"] for r in rows] == ["f0", LONG.removeprefix("feat_"), "f2", "f3"]
    assert rows[1]["dead_dates"] == 1.0 and set(rows[0]) == {"feature", "dead_dates", "missing", "ic_1d", "ic_5d"}
    assert f"column '{LONG}' is dead" in done.stderr and "\x1b[" not in done.stderr
