"""Two real processes under torchrun (gloo): the loss curve of a single process with the same global batch,
one writer, and a checkpoint from 2 ranks that resumes on 1.

Dropout is off so the two runs differ only by floating-point summation order (gradients averaged over ranks
vs accumulated over two days): the stated tolerance is 1e-5 relative on every logged training loss.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import TRAIN, child_env, run_python

from atft.telemetry.events import read_events
from atft.train.checkpoint import checkpoint_dirs
from factories import run_records

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "configs" / "debug.yaml"
SETS = [
    "train.epochs=1",
    "model.dropout=0",
    "train.log_every=10",
    "train.checkpoint_every=50",
    "train.keep_checkpoints=9",
]
TOLERANCE = 1e-5
TORCHRUN = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")


def _args(panel: Path, out: Path, *sets: str) -> list[str | Path]:
    args: list[str | Path] = [*TRAIN, "--config", DEBUG, "--data", panel, "--out", out]
    return args + [a for s in [*SETS, *sets] for a in ("--set", s)]


def _run(*args: str | Path) -> None:
    done = run_python(*args, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, debug_panel: Path) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("ddp")
    _run(*TORCHRUN, *_args(debug_panel, root / "two"))
    _run(*_args(debug_panel, root / "one", "train.accumulate_days=2"))
    return debug_panel, root / "two", root / "one"


def _losses(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in run_records(run) if r["kind"] == "train"]


@pytest.mark.slow
def test_two_ranks_follow_the_single_process_loss_curve(runs: tuple[Path, Path, Path]) -> None:
    _, two, one = runs
    a, b = _losses(two), _losses(one)
    assert [s for s, _ in a] == [s for s, _ in b] and len(a) >= 10  # same optimizer steps
    assert max(abs(x - y) / abs(y) for (_, x), (_, y) in zip(a, b, strict=True)) < TOLERANCE


@pytest.mark.slow
def test_only_rank_0_writes_and_metrics_cover_every_rank(runs: tuple[Path, Path, Path]) -> None:
    _, two, one = runs
    assert {e.rank for e in read_events(two / "events.jsonl")} == {0}
    epoch_two = next(r for r in run_records(two) if r["kind"] == "epoch")
    epoch_one = next(r for r in run_records(one) if r["kind"] == "epoch")
    assert epoch_two["days"] == epoch_one["days"]  # day batches counted over both ranks, not rank 0's half
    val_two = next(r for r in run_records(two) if r["kind"] == "val")
    val_one = next(r for r in run_records(one) if r["kind"] == "val")
    assert val_two["rank_ic_5d"] == pytest.approx(val_one["rank_ic_5d"], rel=1e-3)  # all validation days


@pytest.mark.slow
def test_a_checkpoint_from_two_ranks_resumes_on_one(runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    panel, two, _ = runs
    mid = checkpoint_dirs(two / "checkpoints")[0]
    out = tmp_path / "resumed"
    _run(*_args(panel, out), "--resume", mid)
    resumed = _losses(out)
    assert resumed and resumed[0][0] > int(mid.name.split("-")[1])  # it continued after the checkpoint
    assert (out / "report.json").exists()


@pytest.mark.slow
def test_a_preempted_torchrun_exits_143_after_its_workers_checkpoint(debug_panel: Path, tmp_path: Path) -> None:
    """SIGTERM to the launcher, as the kubelet sends it to the container: plain torchrun forwards it, its workers
    checkpoint and exit 143, and torchrun dies of it with exit 1 -- a permanent failure to the exit-code restart
    rule. atft's wrapper (the chart's command) exits 143, so the job is re-created and resumes."""
    out = tmp_path / "run"
    args = [*_args(debug_panel, out, "train.epochs=3")]  # about 450 steps: the signal comes at the first checkpoint
    cmd = [sys.executable, "-m", "atft.train.torchrun", *TORCHRUN[2:], *map(str, args)]
    proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not checkpoint_dirs(out / "checkpoints") and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)  # both ranks are training once the first periodic checkpoint exists
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-3000:]
    assert "Traceback" not in stderr and "error: torchrun stopped (SignalException" in stderr
    assert stderr.count("checkpoint") >= 2  # each rank said where it checkpointed
    resumed = run_python(*args, "--resume", "auto", timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
