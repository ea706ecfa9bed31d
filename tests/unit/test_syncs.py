"""How often a training step makes the host wait for the device, counted on CPU.

On a GPU, reading a value back (``.item()``, ``bool(t)``, ``float(t)``, ``.tolist()``, ``.cpu()``) stalls
the host until everything queued has run: one per step is what the loop allows (is the gradient norm finite?),
and everything else waits for a logging step, a monitor's check or an epoch end (:mod:`atft.train.loop`).
These tests count those read-backs made by the training code -- not the data loader's, whose tensors are on
the host anyway -- between consecutive optimizer steps, with logging and checks switched off.
"""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from atft.config import load_config
from atft.data.panel import load_panel
from atft.data.splits import pick, walk_forward
from atft.runs.directory import RunDir
from atft.telemetry.sinks import Sinks
from atft.train.distributed import World
from atft.train.loop import fit
from atft.train.setup import build_training, prepare

ROOT = Path(__file__).resolve().parents[2]
READS = ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "cpu")
TRAINING_CODE = ("atft.train.", "atft.health.", "atft.metrics.", "atft.model.")
STEPS = 8
QUIET = [
    "train.log_every=100000",
    "train.checkpoint_every=100000",
    "health.grad_monitor.every=100000",
    "health.degeneracy.every=100000",
    "train.epochs=1",
]


class _Enough(Exception):
    """Raised from the optimizer once enough steps were counted (the patched reads slow everything down)."""


def _counting(reads: Counter[str], name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def read(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith(TRAINING_CODE):
            reads[f"{caller}.{name}"] += 1
        return original(self, *args, **kwargs)

    return read


def _reads_per_step(
    debug_panel: Path, tmp_path: Path, sets: list[str], monkeypatch: pytest.MonkeyPatch
) -> list[Counter[str]]:
    """The read-backs of the training code between each two optimizer steps of one epoch (after the first)."""
    cfg = load_config(ROOT / "configs" / "debug.yaml", [*QUIET, *sets])
    panel = load_panel(debug_panel, cfg.data.horizons)
    data = prepare(cfg, panel, pick(walk_forward(panel.dates, cfg), cfg.split.fold))
    training = build_training(cfg, data, RunDir(tmp_path / "run", cfg), Sinks(), None, World())
    reads: Counter[str] = Counter()
    for name in READS:
        monkeypatch.setattr(torch.Tensor, name, _counting(reads, name, getattr(torch.Tensor, name)))
    snapshots: list[Counter[str]] = []
    step = training.optimizer.step

    def stepping(*args: Any, **kwargs: Any) -> Any:
        snapshots.append(reads.copy())
        if len(snapshots) > STEPS:
            raise _Enough
        return step(*args, **kwargs)

    monkeypatch.setattr(training.optimizer, "step", stepping)
    with pytest.raises(_Enough):
        fit(training, show_progress=False)
    return [after - before for before, after in itertools.pairwise(snapshots[1:])]


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")  # our counting wrapper
@pytest.mark.parametrize("sets", [[], ["train.accumulate_days=2"]])
def test_a_training_step_reads_back_once(
    debug_panel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sets: list[str]
) -> None:
    """The finite check of the gradient norm, and nothing per day (the loss and the monitors mask, not index)."""
    steps = _reads_per_step(debug_panel, tmp_path, sets, monkeypatch)
    assert len(steps) == STEPS - 1
    for reads in steps:
        assert reads == Counter({"atft.train.loop.__bool__": 1}), reads
