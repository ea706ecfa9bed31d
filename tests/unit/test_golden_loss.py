"""A fixed seed gives a fixed loss curve: the first ten training steps of the debug run on CPU.

A change that moves these numbers changes what a run computes -- the model, the loss, the data order, the
initialisation or the optimizer -- whether or not it meant to. When it meant to, rerun
``python tests/unit/test_golden_loss.py`` and paste the curve it prints here, saying why in the commit.
The tolerance allows for float32 summation on another CPU, not for a changed computation.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from atft.config import load_config
from atft.data.panel import load_panel
from atft.data.sources import write_synthetic
from atft.data.splits import pick, walk_forward
from atft.health.events import HealthEvent
from atft.runs.directory import RunDir
from atft.train.distributed import World
from atft.train.loop import fit
from atft.train.setup import build_training, prepare

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "configs" / "debug.yaml"
STEPS = 10
GOLDEN = [  # the mean training loss so far at steps 1..10 (the train record's loss)
    0.8207937479019165,
    0.7866138219833374,
    0.7937176823616028,
    0.7873684167861938,
    0.7839387655258179,
    0.7900905609130859,
    0.7869359850883484,
    0.7949832081794739,
    0.794008195400238,
    0.7813441157341003,
]


class _Curve:
    """A sink that keeps each step's mean training loss and stops the run after :data:`STEPS` steps."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def log_dict(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if kind == "train":
            self.losses.append(values["loss"])
            if len(self.losses) == STEPS:
                raise _Enough

    def health(self, event: HealthEvent) -> None:
        pass

    def close(self) -> None:
        pass


class _Enough(Exception):
    pass


def loss_curve(panel_path: Path, run_dir: Path) -> list[float]:
    """The ``train`` records' loss at steps 1..10 of the debug config's run on ``panel_path``."""
    cfg = load_config(DEBUG, ["train.log_every=1", "train.checkpoint_every=100000"])
    panel = load_panel(panel_path, cfg.data.horizons)
    data = prepare(cfg, panel, pick(walk_forward(panel.dates, cfg), cfg.split.fold))
    curve = _Curve()
    training = build_training(cfg, data, RunDir(run_dir, cfg), curve, None, World())
    with pytest.raises(_Enough):
        fit(training, show_progress=False)
    return curve.losses


def test_the_first_ten_steps_follow_the_golden_curve(debug_panel: Path, tmp_path: Path) -> None:
    assert loss_curve(debug_panel, tmp_path / "run") == pytest.approx(GOLDEN, rel=1e-4)


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/atft-golden")
    write_synthetic(load_config(DEBUG), folder / "panel.parquet")
    print("GOLDEN = [\n" + "".join(f"    {x!r},\n" for x in loss_curve(folder / "panel.parquet", folder / "run")) + "]")
