"""Kill a real training run with SIGKILL at random steps, resume it with ``--resume auto`` each time, and
get the weights of an unbroken run bit for bit; SIGTERM ends a run with a checkpoint and exit code 143."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from processes import start_train
from safetensors.torch import load_file

from atft.train.checkpoint import checkpoint_dirs
from atft.train.preemption import GRACE_BOUND_S
from factories import run_records

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "configs" / "debug.yaml"
SETS = ["train.epochs=2", "train.checkpoint_every=20", "train.log_every=10"]
KILLS = 5


def _start(panel: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    args = ["--config", str(DEBUG), "--data", str(panel), "--out", str(out), "--resume", "auto", *extra]
    for item in SETS:
        args += ["--set", item]
    return start_train(*args)


def _newest_step(out: Path) -> int:
    dirs = checkpoint_dirs(out / "checkpoints")
    return int(dirs[-1].name.split("-")[1]) if dirs else -1


def _wait_for_step(proc: subprocess.Popen[str], out: Path, step: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while _newest_step(out) < step:
        assert proc.poll() is None, f"run ended early ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < deadline, f"no checkpoint at step {step} after {timeout} s"
        time.sleep(0.05)


def _finish(proc: subprocess.Popen[str]) -> str:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return err


def _train_losses(out: Path) -> list[float]:
    return [r["loss"] for r in run_records(out) if r["kind"] == "train"]


def _health(out: Path) -> list[dict[str, object]]:
    """The health records and each epoch's learning-signal verdict, without their wall times."""
    records = run_records(out)
    verdicts = [
        {k: v for k, v in r.items() if k.startswith("epoch_train_rank_ic")} for r in records if r["kind"] == "epoch"
    ]
    return [{k: v for k, v in r.items() if k != "time"} for r in records if r["kind"] == "health"] + verdicts


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), f"{name} differs"


@pytest.mark.slow
def test_sigkill_at_random_steps_then_resume_gives_the_unbroken_weights(debug_panel: Path, tmp_path: Path) -> None:
    unbroken = tmp_path / "unbroken"
    _finish(_start(debug_panel, unbroken))
    total = _newest_step(unbroken)

    broken, rng = tmp_path / "broken", random.Random(20261125)
    targets = sorted(rng.sample(range(5, total - 5), KILLS))
    for target in targets:
        proc = _start(debug_panel, broken)
        _wait_for_step(proc, broken, target)
        time.sleep(rng.uniform(0.0, 0.4))  # land anywhere: mid-step, mid-checkpoint, mid-evaluation
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    err = _finish(_start(debug_panel, broken))
    assert "resume" in err  # the console says it continued from a checkpoint

    _same_weights(unbroken / "model.safetensors", broken / "model.safetensors")
    last = checkpoint_dirs(unbroken / "checkpoints")[-1].name
    _same_weights(
        unbroken / "checkpoints" / last / "model.safetensors", broken / "checkpoints" / last / "model.safetensors"
    )
    assert _train_losses(broken) == _train_losses(unbroken)  # no step logged twice or lost
    # the monitors' state (rolling window, the epoch's days) resumes too: the same findings, the same verdicts
    assert _health(broken) == _health(unbroken) and "epoch_train_rank_ic_t_5d" in _health(unbroken)[-1]
    resumes = [r for r in run_records(broken) if r["kind"] == "resume" and "checkpoint" in r]
    assert 1 <= len(resumes) <= KILLS  # a kill before the first checkpoint restarts from step 0


@pytest.mark.slow
def test_sigterm_finishes_the_step_writes_a_checkpoint_and_exits_143(debug_panel: Path, tmp_path: Path) -> None:
    out = tmp_path / "preempted"
    proc = _start(debug_panel, out)
    _wait_for_step(proc, out, 40)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=GRACE_BOUND_S)
    assert time.monotonic() - sent < GRACE_BOUND_S
    assert proc.returncode == 143, err
    assert "SIGTERM at step" in err and "--resume auto" in err and "Traceback" not in err
    stopped = _newest_step(out)
    assert stopped >= 40
    records = run_records(out)
    assert max(r["step"] for r in records) <= stopped  # nothing logged after the checkpoint
    _finish(_start(debug_panel, out))  # and the same command continues it
    assert (out / "report.json").exists()


def _run_cli(panel: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    proc = _start(panel, out, *extra)
    out_text, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out_text, err)


@pytest.fixture(scope="module")
def finished(debug_panel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "finished"
    assert _run_cli(debug_panel, out, "--set", "train.epochs=1").returncode == 0
    return out


def test_auto_resume_skips_a_corrupt_newest_checkpoint_and_says_so(
    debug_panel: Path, finished: Path, tmp_path: Path
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    newest, previous = checkpoint_dirs(out / "checkpoints")[-1], checkpoint_dirs(out / "checkpoints")[-2]
    os.truncate(newest / "model.safetensors", 100)
    done = _run_cli(debug_panel, out, "--set", "train.epochs=1")
    assert done.returncode == 0, done.stderr
    (resumed,) = [r for r in run_records(out) if r["kind"] == "resume"]
    assert resumed["checkpoint"] == str(previous) and resumed["skipped"] == 1
    assert newest.name in resumed["skipped_checkpoint_1"] and "checksum" in resumed["skipped_checkpoint_1"]


def test_resume_with_another_config_is_refused_naming_the_key(debug_panel: Path, finished: Path) -> None:
    before = (finished / "events.jsonl").read_bytes()
    done = _run_cli(debug_panel, finished, "--set", "train.epochs=1", "--set", "train.lr=0.5")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "config changed since the checkpoint" in done.stderr and "train.lr: 0.001 in the checkpoint, 0.5 now" in (
        done.stderr
    )
    assert (finished / "events.jsonl").read_bytes() == before  # nothing touched


def test_a_truncated_checkpoint_named_explicitly_is_exit_2(debug_panel: Path, finished: Path, tmp_path: Path) -> None:
    bad = tmp_path / "ckpt"
    shutil.copytree(checkpoint_dirs(finished / "checkpoints")[-1], bad)
    os.truncate(bad / "state.pt", 7)
    done = _run_cli(debug_panel, tmp_path / "new", "--resume", str(bad), "--set", "train.epochs=1")
    assert done.returncode == 2 and f"{bad / 'state.pt'}: checksum mismatch" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "new").exists()
