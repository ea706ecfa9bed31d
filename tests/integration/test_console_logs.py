"""A pod's log: the training container as a real process with stdout and stderr piped (no terminal).

Every line is one whole record that starts with its kind -- the start banner first, progress lines with the
time left, the validation, epoch and cost records unwrapped, each health event on one line -- and no escape
code or cut cell appears anywhere, whatever FORCE_COLOR and COLUMNS say.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from processes import run_train

from atft.config import load_config
from atft.telemetry.sinks import one_line
from factories import run_records

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "configs" / "debug.yaml"
KINDS = ("start", "progress", "val", "epoch", "selection", "cost", "resume", "CRITICAL", "WARNING", "INFO")


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One epoch of the debug run with a dead input (a health event every monitor check), logs piped."""
    out = tmp_path_factory.mktemp("logs") / "run"
    env = {"ATFT_CACHE_DIR": str(tmp_path_factory.mktemp("cache")), "COLUMNS": "80", "FORCE_COLOR": "1"}
    args = ["--config", DEBUG, "--out", out, "--set", "train.epochs=1", "--set", "faults.dead_feature=ret_1d"]
    done = run_train(*args, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return out, done


def test_every_line_is_one_whole_plain_record(drill: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, done = drill
    lines = done.stderr.splitlines()
    assert "\x1b[" not in done.stderr + done.stdout and "…" not in done.stderr + done.stdout
    for line in lines:
        first = line.split(" ", 1)[0]
        # "warning:" is the data contract's note on the synthetic panel (printed when it is first generated)
        assert first in KINDS or line.startswith("warning: "), f"not a record line: {line!r}"
    val = next(line for line in lines if line.startswith("val "))
    assert re.search(r"rank_ic_1d=\S+ rank_ic_5d=\S+ rank_ic_10d=\S+ rank_ic_20d=\S+$", val), val  # unwrapped
    assert done.stdout.startswith("best epoch 0; ") and len(done.stdout.splitlines()) == 1


def test_the_banner_comes_first(drill: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, done = drill
    cfg = load_config(DEBUG)
    starts = [i for i, line in enumerate(done.stderr.splitlines()) if line.startswith("start ")]
    assert starts[:2] == [0, 1] or starts[:2] == [0, 2]  # a contract warning may come between
    first, banner = (done.stderr.splitlines()[i] for i in starts[:2])
    assert first == f"start run_dir={out} data=synthetic market"
    assert f"panel={cfg.synth.n_stocks} stocks x {cfg.synth.n_days} days x " in banner
    for part in (f"run_dir={out}", " params=", " device=cpu precision=fp32 (train.precision=auto)", " threads=1"):
        assert part in banner
    assert banner.endswith(" ranks=1 resume=fresh")


def test_progress_lines_count_to_the_last_step_with_time_left(
    drill: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, done = drill
    progress = [line for line in done.stderr.splitlines() if line.startswith("progress ")]
    pattern = r"progress step=(\d+)/(\d+) \(\d+%\) epoch=0/1 rate=[\d,]+ stock-days/s elapsed=\S+ left=\S+"
    parsed = [re.fullmatch(pattern, line) for line in progress]
    assert len(parsed) >= 2 and all(parsed), progress
    cfg = load_config(DEBUG)
    records = run_records(out)
    logged = [r["step"] for r in records if r["kind"] == "train"]
    assert [int(m.group(1)) for m in parsed if m] == logged and logged[0] == cfg.train.log_every
    last_step = next(r["step"] for r in records if r["kind"] == "cost")
    assert {int(m.group(2)) for m in parsed if m} == {last_step}  # the plan's total is the loop's


def test_each_health_event_is_one_line(drill: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, done = drill
    events = [r for r in run_records(out) if r["kind"] == "health"]
    lines = [line for line in done.stderr.splitlines() if line.split(" ", 1)[0] in ("CRITICAL", "WARNING", "INFO")]
    assert events and len(lines) == len(events)
    for line, event in zip(lines, events, strict=True):
        assert line.startswith(f"{event['severity'].upper()} {event['name']} ") and f"step={event['step']}" in line
        assert line.endswith(one_line(event["message"]))
