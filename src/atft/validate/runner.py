"""Run a validation's plan: each fold and seed as its own ``python -m atft.train`` process, ``jobs`` at a time.

Why processes and not a loop in this one: a fold is exactly the job a cluster runs (the same entry point,
config and ``--resume auto``), a fold that fails or is killed cannot take the others with it, and folds run
in parallel on a machine with cores to spare. A fold is done when its run directory holds its predictions
and its report; anything else -- never started, killed, preempted -- is run again with ``--resume auto``,
which continues it from its newest checkpoint. So a killed validation, run again with the same command and
``--resume auto``, continues with exactly the unfinished folds.

SIGTERM (a node drain) is passed on to the running folds, which checkpoint and exit 143; the validation then
exits 143 too (:class:`~atft.errors.Preempted`), and the same command continues it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atft.config import Config, config_changes, read_yaml
from atft.data.splits import walk_forward
from atft.errors import InputFileError, OutputExistsError, Preempted, TrainingFailed
from atft.runs.directory import claim, is_marked, refuse_foreign, resolve_out
from atft.train.job import load_checked_panel, panel_path
from atft.train.preemption import StopRequest
from atft.validate.plan import MARKER, FoldRun, Plan, check_same_plan, launch_order, make_plan, write_plan

POLL_S = 0.5
PREEMPTED = 143


@dataclass
class _Running:
    run: FoldRun
    process: subprocess.Popen[bytes]
    started: float


def finished(run_path: Path) -> bool:
    """A fold run is done when it wrote its predictions and its report (a killed or failed one has not)."""
    return (run_path / "predictions.parquet").is_file() and (run_path / "report.json").is_file()


def open_validation(
    cfg: Config, out: str | Path, data: str | Path | None, seeds: list[int], resume: bool, overwrite: bool
) -> tuple[Path, Plan]:
    """Check the panel, plan the folds, and claim ``out`` for them: a new validation, or the one it continues.

    Returns the validation's directory (``out`` resolved once) and its plan.

    Raises:
        OutputExistsError: ``out`` holds something that is not a validation, or a validation that ``resume``
            does not continue (another plan, or no ``--resume auto``).
    """
    out = resolve_out(out)
    refuse_foreign(out, MARKER)
    path = panel_path(cfg, data)
    panel = load_checked_panel(cfg, path)
    plan = make_plan(cfg, path, walk_forward(panel.dates, cfg, calendar=str(path)), panel.dates, seeds)
    if is_marked(out, MARKER) and resume and not overwrite:
        check_same_plan(out, plan, cfg)
        return out, plan
    if is_marked(out, MARKER) and not overwrite:
        raise OutputExistsError(
            f"{out}: a validation exists here (pass --resume auto to continue it, or --overwrite to start over)"
        )
    claim(out, replace=overwrite, marker=MARKER)
    write_plan(out, plan, cfg)
    return out, plan


def adopt_validation(cfg: Config, out: str | Path, data: str | Path | None, seeds: list[int]) -> tuple[Path, Plan]:
    """Plan the folds over run directories that other processes wrote (one cluster job per fold); train nothing.

    Why: on a cluster each fold is its own job writing ``OUT/runs/fold-KK-seed-S`` on the runs volume, and no
    process wrote the plan. This writes it (or checks the one there), so that the pooled report reads the folds
    as if ``atft validate`` had run them. ``out`` may hold only ``runs/`` and ``logs/`` with the plan's run
    directories; a fold run directory trained with another config is refused, naming the keys that differ.

    Raises:
        OutputExistsError: ``out`` holds anything else, or a validation with another plan.
        InputFileError: a fold was trained with another config than this one plus its fold and seed.
    """
    out = resolve_out(out)
    path = panel_path(cfg, data)
    panel = load_checked_panel(cfg, path)
    plan = make_plan(cfg, path, walk_forward(panel.dates, cfg, calendar=str(path)), panel.dates, seeds)
    if is_marked(out, MARKER):
        check_same_plan(out, plan, cfg)
    else:
        _refuse_unplanned(out, plan)
    for run in plan.runs:
        _check_fold_config(cfg, plan.run_dir(out, run), run)
    if not is_marked(out, MARKER):
        write_plan(out, plan, cfg)
    return out, plan


def _refuse_unplanned(out: Path, plan: Plan) -> None:
    """``out`` may hold only what fold jobs write: ``runs/<a run of the plan>`` and ``logs/``."""
    names = {r.name for r in plan.runs}
    foreign = [p.name for p in out.iterdir() if p.name not in ("runs", "logs")] if out.is_dir() else []
    runs = out / "runs"
    foreign += [f"runs/{p.name}" for p in runs.iterdir() if p.name not in names] if runs.is_dir() else []
    if foreign:
        raise OutputExistsError(
            f"{out}: holds {', '.join(sorted(foreign)[:5])}, which no fold of this plan ({len(names)} runs: "
            f"{', '.join(sorted(names)[:3])}, ...) wrote; atft writes a validation's plan only beside its fold runs"
        )


def _check_fold_config(cfg: Config, run_path: Path, run: FoldRun) -> None:
    """A fold run that exists must have been trained with ``cfg`` plus its fold and seed, else it is refused."""
    written = run_path / "config.yaml"
    if not written.is_file():
        return
    fold_cfg = cfg.model_copy(update={"seed": run.seed, "split": cfg.split.model_copy(update={"fold": run.fold})})
    differ = list(config_changes(read_yaml(written), fold_cfg))
    if differ:
        raise InputFileError(
            f"{written}: fold {run.name} was trained with another config ({', '.join(differ[:5])} differ); "
            "report it with the config it was trained with, or train it again"
        )


def run_plan(parent: Path, plan: Plan, jobs: int, say: Callable[[str], None]) -> None:
    """Run every unfinished fold of ``plan`` under ``parent``, ``jobs`` at a time; return when all are done.

    Raises:
        Preempted: SIGTERM arrived (the running folds checkpointed and stopped) or a fold was preempted.
        TrainingFailed: a fold failed (the others still ran); each is named with its log.
    """
    pending = launch_order([r for r in plan.runs if not finished(plan.run_dir(parent, r))])
    say(f"{len(plan.runs) - len(pending)} of {len(plan.runs)} fold runs already done; {len(pending)} to run")
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // jobs))
    running: list[_Running] = []
    failed: list[str] = []
    preempted: list[str] = []
    forwarded = False
    with StopRequest() as stop:
        while pending or running:
            while pending and len(running) < jobs and not stop.requested:
                run = pending.pop(0)
                running.append(_Running(run, _launch(parent, plan, run, threads), time.monotonic()))
                say(f"{run.name} (test {run.label}): started; log {parent / 'logs' / (run.name + '.log')}")
            if stop.requested and not forwarded:  # once, also when every fold has started: each checkpoints
                pending.clear()
                for r in running:
                    r.process.send_signal(signal.SIGTERM)
                forwarded = True
            time.sleep(POLL_S)
            for r in [r for r in running if r.process.poll() is not None]:
                running.remove(r)
                code, took = r.process.returncode, time.monotonic() - r.started
                if code == 0:
                    say(f"{r.run.name}: done in {took:.0f} s")
                elif code == PREEMPTED:
                    preempted.append(r.run.name)
                    say(f"{r.run.name}: preempted after {took:.0f} s (checkpointed; --resume auto continues it)")
                else:  # said now, not only in the final error: the other folds may run for hours yet
                    failed.append(f"{r.run.name} (exit {code}; log {parent / 'logs' / (r.run.name + '.log')})")
                    say(f"{r.run.name}: FAILED after {took:.0f} s: {failed[-1]}")
    if stop.requested or preempted:
        raise Preempted(f"{parent}: stopped with {len(preempted)} fold(s) checkpointed; rerun with --resume auto")
    if failed:
        raise TrainingFailed(f"{parent}: {len(failed)} fold run(s) failed: " + "; ".join(sorted(failed)))


def _launch(parent: Path, plan: Plan, run: FoldRun, threads: str) -> subprocess.Popen[bytes]:
    log = parent / "logs" / f"{run.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    args = ["--config", str(parent / "config.yaml"), "--data", plan.panel, "--out", str(plan.run_dir(parent, run))]
    args += [a for s in run.overrides() for a in ("--set", s)]
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "OMP_NUM_THREADS": threads}  # idle OpenMP threads sleep
    env["ATFT_RUN_ID"] = f"{parent.name}-{run.name}"
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "atft.train", *args, "--resume", "auto"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )
