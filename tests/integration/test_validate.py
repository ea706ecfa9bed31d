"""``atft validate``: every fold trained in its own process, pooled into one report; a killed validation continues
with exactly its unfinished folds; another plan in the same directory is refused."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from processes import CLI, child_env, run_cli

from atft.metrics.finance import daily_rank_ic, evaluate
from atft.metrics.inference import paired_difference
from atft.report.read import load_run
from atft.train.checkpoint import checkpoint_dirs
from atft.train.preemption import GRACE_BOUND_S
from atft.validate.plan import read_plan

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "configs" / "debug.yaml"
SETS = ["split.n_folds=2", "split.fold=-1", "train.epochs=1"]


def _validate(panel: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["validate", "--config", str(DEBUG), "--data", str(panel), "--out", str(out), "--jobs", "2", *extra]
    args += [a for s in SETS for a in ("--set", s)]
    return run_cli(*args, timeout=900)


@pytest.fixture(scope="module")
def validation(tmp_path_factory: pytest.TempPathFactory, debug_panel: Path) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("validate") / "wf"
    done = _validate(debug_panel, out)
    assert done.returncode == 0, done.stderr
    return debug_panel, out


def test_every_fold_is_an_ordinary_run_and_the_report_pools_their_test_days(validation: tuple[Path, Path]) -> None:
    _, out = validation
    plan = read_plan(out)
    assert [r.name for r in plan.runs] == ["fold-00-seed-0", "fold-01-seed-0"]
    report = json.loads((out / "report.json").read_text())
    runs = [load_run(plan.run_dir(out, r)) for r in plan.runs]
    assert report["n_test_days"] == sum(len(r.splits["test"].dates) for r in runs) > 50
    # the pooled RankIC is the one definition over the concatenated test rows of the two folds
    tests = [r.splits["test"] for r in runs]
    dates = np.concatenate([t.dates[t.day] for t in tests])
    _, day = np.unique(dates, return_inverse=True)
    pred, target = (np.concatenate([t.columns[c] for t in tests]) for c in ("model_5d", "target_5d"))
    expected = evaluate(day, pred, target, 5, stock=np.concatenate([t.stock for t in tests]), cost_bps=10.0)
    pooled = report["pooled"]["model"]["5d"]
    assert pooled["rank_ic"] == pytest.approx(expected["rank_ic"], rel=1e-12)
    assert pooled["rank_ic_se"] > 0 and pooled["rank_ic_ci_low"] < pooled["rank_ic"] < pooled["rank_ic_ci_high"]
    assert {o["name"] for o in report["objectives"]} >= {"rank_ic_positive", "beats_ridge", "sharpe_net_positive"}
    assert set(report["paired"]) >= {"momentum", "reversal", "ridge"}
    assert [row["fold"] for row in report["per_fold"] if row["horizon"] == "5d"] == [r.label for r in plan.runs]
    # each fold's row pairs the model with each baseline on that fold's days alone
    last = tests[1]
    model, ridge = (
        daily_rank_ic(last.day, last.columns[c], last.columns["target_5d"]) for c in ("model_5d", "ridge_5d")
    )
    paired = paired_difference(model.days, model.values, ridge.days, ridge.values, horizon=5).inference
    row = next(r for r in report["per_fold"] if r["fold"] == plan.runs[1].label and r["horizon"] == "5d")
    assert row["t_vs_ridge"] == pytest.approx(paired.t, rel=1e-9) and row["days"] == model.values.size
    # the validation windows by epochs trained: each run's val record of its one epoch, pooled by days
    vals = [next(x for x in r.records if x["kind"] == "val") for r in runs]
    (by_epoch,) = report["epochs"]["by_epochs"]
    days = sum(v["n_days_5d"] for v in vals)
    assert by_epoch["runs"] == 2 and by_epoch["5d"] == pytest.approx(
        sum(v["n_days_5d"] * v["rank_ic_5d"] for v in vals) / days, rel=1e-9
    )
    assert report["epochs"]["picked"]["runs"] == {r.name: 1 for r in plan.runs}
    assert (out / "report.md").read_text().count("## Pooled test days") == 4
    assert "## Validation windows by epochs trained" in (out / "report.md").read_text()
    assert {"rank_ic_cumulative.png", "quantile_returns.png", "rank_ic_per_fold.png"} <= {p.name for p in out.iterdir()}


def test_a_killed_validation_reruns_only_its_unfinished_folds(validation: tuple[Path, Path], tmp_path: Path) -> None:
    panel, done = validation
    out = tmp_path / "wf"
    shutil.copytree(done, out)
    plan = read_plan(out)
    unfinished, kept = plan.run_dir(out, plan.runs[1]), plan.run_dir(out, plan.runs[0])
    (unfinished / "report.json").unlink()  # killed before its report
    (unfinished / "predictions.parquet").unlink()
    before = (kept / "model.safetensors").stat().st_mtime_ns
    refused = _validate(panel, out)
    assert refused.returncode == 2 and "pass --resume auto to continue it" in refused.stderr
    resumed = _validate(panel, out, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert "1 of 2 fold runs already done; 1 to run" in resumed.stderr
    assert (kept / "model.safetensors").stat().st_mtime_ns == before
    assert (unfinished / "report.json").is_file()


def test_another_plan_in_the_same_directory_is_refused_by_name(validation: tuple[Path, Path], tmp_path: Path) -> None:
    panel, done = validation
    out = tmp_path / "wf"
    shutil.copytree(done, out)
    changed = _validate(panel, out, "--resume", "auto", "--set", "train.lr=0.01")
    assert (
        changed.returncode == 2 and "a validation with another plan (train.lr: 0.001 then, 0.01 now)" in changed.stderr
    )
    seeds = _validate(panel, out, "--resume", "auto", "--seeds", "0,1")
    assert seeds.returncode == 2 and "seeds: [0] then, [0, 1] now" in seeds.stderr


def test_a_validation_an_older_atft_started_continues_after_an_upgrade_adds_an_option(
    validation: tuple[Path, Path], tmp_path: Path
) -> None:
    """The stored configs lack ``loss.target``, as an atft from before that option wrote them: at its default the
    validation continues and is pooled again; set to anything else it is refused, naming the key."""
    panel, done = validation
    out = tmp_path / "wf"
    shutil.copytree(done, out)
    for written in [out / "config.yaml", *(out / "runs").glob("*/config.yaml")]:
        text = written.read_text()
        assert "  target: return\n" in text
        written.write_text(text.replace("  target: return\n", ""))
    marker = json.loads((out / "validation.json").read_text())  # an older plan also carried the config's digest
    marker["config_digest"] = hashlib.sha256((out / "config.yaml").read_bytes()).hexdigest()
    (out / "validation.json").write_text(json.dumps(marker))
    (out / "report.json").unlink()
    resumed = _validate(panel, out, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert "2 of 2 fold runs already done; 0 to run" in resumed.stderr and (out / "report.json").is_file()
    assert _report_only(panel, out).returncode == 0
    changed = _validate(panel, out, "--resume", "auto", "--set", "loss.target=rank")
    assert changed.returncode == 2 and "loss.target: '<absent>' then, 'rank' now" in changed.stderr


def test_a_folder_that_is_not_a_validation_is_left_untouched(validation: tuple[Path, Path], tmp_path: Path) -> None:
    panel, _ = validation
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    for flags in ((), ("--overwrite",), ("--resume", "auto")):
        refused = _validate(panel, folder, *flags)
        assert refused.returncode == 2 and "not an atft validation (no validation.json)" in refused.stderr
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_a_failed_fold_is_said_when_it_ends_and_named_at_the_end(validation: tuple[Path, Path], tmp_path: Path) -> None:
    """A fold that fails is reported as it ends (the others may run for hours) and again in the final error."""
    panel, _ = validation
    done = _validate(panel, tmp_path / "wf", "--set", "faults.nan_at_step=3")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    said = [line for line in done.stderr.splitlines() if ": FAILED after " in line]
    assert sorted(line.split(":")[0] for line in said) == ["fold-00-seed-0", "fold-01-seed-0"]
    final = done.stderr.strip().splitlines()
    assert any("2 fold run(s) failed: fold-00-seed-0 (exit 1; log" in line for line in final)
    assert all(said_line in done.stderr.split(final[-1])[0] for said_line in said)  # before the final error


def _report_only(panel: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["validate", "--config", str(DEBUG), "--data", str(panel), "--out", str(out), "--report-only", *extra]
    return run_cli(*args, *[a for s in SETS for a in ("--set", s)], timeout=300)


def test_report_only_pools_fold_runs_that_cluster_jobs_wrote(validation: tuple[Path, Path], tmp_path: Path) -> None:
    """One cluster job per fold writes only OUT/runs/fold-KK-seed-S; --report-only plans and pools them, training
    nothing, and gives the report `atft validate` gave for the same runs."""
    panel, done = validation
    out = tmp_path / "cluster"
    shutil.copytree(done / "runs", out / "runs")
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("model.safetensors")}
    first = _report_only(panel, out)
    assert first.returncode == 0, first.stderr
    assert read_plan(out) == read_plan(done)
    pooled, expected = (json.loads((d / "report.json").read_text())["pooled"] for d in (out, done))
    assert pooled["model"]["5d"]["rank_ic"] == pytest.approx(expected["model"]["5d"]["rank_ic"], rel=1e-12)
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("model.safetensors")} == stamps  # trained nothing
    again = _report_only(panel, out)  # the plan is there now: checked, not rewritten
    assert again.returncode == 0, again.stderr
    shutil.rmtree(out / "runs" / "fold-01-seed-0")  # a fold job still running: reported as unfinished
    partial = _report_only(panel, out)
    assert partial.returncode == 0 and "1 of 2 fold runs unfinished: fold-01-seed-0" in partial.stderr


def test_report_only_refuses_a_fold_trained_with_another_config(validation: tuple[Path, Path], tmp_path: Path) -> None:
    panel, done = validation
    out = tmp_path / "cluster"
    shutil.copytree(done / "runs", out / "runs")
    changed = _report_only(panel, out, "--set", "train.lr=0.01")
    assert changed.returncode == 2 and "Traceback" not in changed.stderr
    assert "fold fold-00-seed-0 was trained with another config (train.lr differ)" in changed.stderr
    assert not (out / "validation.json").exists()
    (out / "notes.txt").write_text("mine")
    foreign = _report_only(panel, out)
    assert foreign.returncode == 2 and "holds notes.txt, which no fold of this plan" in foreign.stderr
    assert not (out / "validation.json").exists()


def _perfect_val_forecasts(run_dir: Path) -> None:
    """Replace the model's 5d forecast on the run's validation rows with the 5d target itself."""
    path = run_dir / "predictions.parquet"
    table = pq.read_table(path)
    val = pc.equal(table.column("split"), "val")
    column = pc.if_else(val, table.column("target_5d"), table.column("model_5d"))
    pq.write_table(table.set_column(table.schema.get_field_index("model_5d"), "model_5d", column), path)


def test_two_validations_pair_on_the_days_of_the_split_asked_for(validation: tuple[Path, Path], tmp_path: Path) -> None:
    """``atft report A B --split val`` pairs the validation windows (where changes are chosen); the test days
    are the default. B differs from A only on fold 1's validation rows, so only that pairing sees it."""
    _, a = validation
    b = tmp_path / "wf-b"
    shutil.copytree(a, b)
    _perfect_val_forecasts(b / "runs" / "fold-01-seed-0")

    def paired(*extra: str) -> dict[str, dict[str, float]]:
        done = run_cli("report", a, b, "-o", "json", *extra)
        assert done.returncode == 0, done.stderr
        return {row["horizon"]: row for row in json.loads(done.stdout)}

    on_val, on_test = paired("--split", "val"), paired()
    val_days = sum(
        len(load_run(a / "runs" / name).splits["val"].dates) for name in ("fold-00-seed-0", "fold-01-seed-0")
    )
    assert on_val["5d"]["n"] == val_days and on_val["5d"]["b"] > on_val["5d"]["a"] + 0.3
    assert on_val["5d"]["mean"] == pytest.approx(on_val["5d"]["b"] - on_val["5d"]["a"], abs=1e-9)
    assert on_val["5d"]["b_se"] > 0 and on_val["5d"]["t"] > 2
    assert on_val["1d"]["mean"] == 0 and on_test["5d"]["mean"] == 0  # nothing else differs
    refused = run_cli("report", a, "--split", "val")
    assert refused.returncode == 2 and "--split pairs two validations; give RUN_B too" in refused.stderr


def test_sigterm_while_every_fold_runs_checkpoints_each_and_exits_143(debug_panel: Path, tmp_path: Path) -> None:
    """A preempted pod's SIGTERM reaches the validation only: it must pass it on to its running folds, also when
    none is left to start, so each checkpoints within the grace period instead of being killed mid-epoch."""
    out = tmp_path / "wf"
    args = ["validate", "--config", str(DEBUG), "--data", str(debug_panel), "--out", str(out), "--jobs", "2"]
    for item in ["split.n_folds=2", "train.epochs=4", "train.checkpoint_every=5"]:
        args += ["--set", item]
    proc = subprocess.Popen([sys.executable, *CLI, *args], env=child_env(), stderr=subprocess.PIPE, text=True)
    folds = [out / "runs" / f"fold-0{i}-seed-0" for i in (0, 1)]
    deadline = time.monotonic() + 300
    while not all(checkpoint_dirs(f / "checkpoints") for f in folds):  # both folds started, none left pending
        assert proc.poll() is None, f"validation ended early ({proc.returncode})"
        assert time.monotonic() < deadline, "no checkpoint in both folds after 300 s"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=GRACE_BOUND_S)
    assert proc.returncode == 143, err
    assert "stopped with 2 fold(s) checkpointed" in err and "Traceback" not in err
    for fold in folds:
        assert "SIGTERM at step" in (out / "logs" / f"{fold.name}.log").read_text()
        assert not (fold / "report.json").exists()
