"""What a checkpoint holds besides the weights, and how a resumed ``fit`` takes it back.

Resuming is exact on CPU: the weights, AdamW moments, the learning-rate schedule, the torch RNG (dropout),
the position in the epoch's day order (the sampler's order is a function of seed and epoch, so only the
number of day batches already done is stored), the running loss sums and the monitors' state are restored.
The checkpoint also stores the length of the run's ``events.jsonl`` at that moment; the resumed run's
``run_start`` names it, so readers leave out the events of the steps it replays (the file itself is only
ever appended to). The effective config is stored and must match the resuming run's, key for key; a key an
older atft did not have counts as unchanged while it holds its default (:func:`atft.config.config_changes`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from atft.config import Config, config_changes, dump_config
from atft.errors import CheckpointError
from atft.health.monitors import Monitors
from atft.train.averaging import NoAverage, WeightAverage
from atft.train.checkpoint import Checkpoint, checkpoints_root, save_checkpoint
from atft.train.distributed import World


@dataclass
class LoopState:
    """Where the loop is: epoch, day batches done in it, optimizer steps, and its running sums."""

    epoch: int = 0
    batches: int = 0  # day batches of this epoch already trained on
    step: int = 0  # optimizer steps so far
    stock_days: int = 0  # of finished epochs
    epoch_stock_days: int = 0
    best_value: float = -math.inf
    best_epoch: int = -1
    running: list[float] = field(default_factory=list)  # sums of loss and its terms over this epoch's batches

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> LoopState:
        """Read a checkpoint's ``loop`` record; a missing, unknown or mistyped field is a TypeError naming it."""
        loop = cls(**state)  # a missing or unknown field raises TypeError here
        for name, value in asdict(loop).items():
            expected: type | tuple[type, ...] = (
                (int, float) if name == "best_value" else list if name == "running" else int
            )
            if isinstance(value, bool) or not isinstance(value, expected):
                raise TypeError(f"loop.{name} is {value!r}, not {getattr(expected, '__name__', 'a number')}")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in loop.running):
            raise TypeError(f"loop.running holds a non-number: {loop.running!r}")
        return loop


def training_state(
    cfg: Config,
    loop: LoopState,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    monitors: Monitors,
    events_path: Path,
) -> dict[str, Any]:
    """The ``state.pt`` payload: only tensors, numbers, strings, lists and dicts (``weights_only`` loads it)."""
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "config": dump_config(cfg),
        "loop": asdict(loop),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "health": monitors.state_dict(),
        "rng": rng,
        "events_bytes": events_path.stat().st_size if events_path.exists() else 0,
    }


def write_checkpoint(
    cfg: Config,
    run_path: Path,
    model: torch.nn.Module,
    best: dict[str, torch.Tensor] | None,
    average: WeightAverage | NoAverage,
    state: dict[str, Any],
) -> Path:
    step, averaged = int(state["loop"]["step"]), average.checkpoint_state()
    model_state = dict(model.state_dict())
    return save_checkpoint(
        checkpoints_root(run_path), step, model_state, best, averaged, state, cfg.train.keep_checkpoints
    )


def check_config(cfg: Config, checkpoint: Checkpoint) -> None:
    """A run resumes only with the config it was started with; each differing key is named."""
    changes = config_changes(yaml.safe_load(checkpoint.state["config"]), cfg)
    shown = [f"{key}: {then!r} in the checkpoint, {now!r} now" for key, (then, now) in changes.items()]
    if shown:
        raise CheckpointError(
            f"{checkpoint.path}: the run's config changed since the checkpoint ({len(shown)} key(s)): "
            + "; ".join(shown[:5])
            + "; resume with the same config, or start a new run directory"
        )


def restore(
    checkpoint: Checkpoint,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    monitors: Monitors,
    average: WeightAverage | NoAverage,
    world: World,
) -> LoopState:
    """Load the training state; the RNG last, after any setup used it.

    The running sums in a checkpoint are totals over all ranks: rank 0 takes them, the other ranks start
    from zero, so the next all-reduce gives the total again -- with any number of ranks.
    """
    state = checkpoint.state
    model.load_state_dict(checkpoint.model)
    average.load_checkpoint_state(checkpoint.average, checkpoint.path)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    monitors.load_state_dict(state["health"])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    loop = LoopState.from_dict(state["loop"])
    if not world.is_main:
        loop.running, loop.stock_days, loop.epoch_stock_days = [], 0, 0
    return loop


def events_bytes(checkpoint: Checkpoint, events_path: Path | None = None) -> int:
    """The length of ``events.jsonl`` when ``checkpoint`` was written (the resumed ``run_start`` names it).

    Raises:
        CheckpointError: ``events_path`` is shorter now: the run directory does not belong to the checkpoint.
    """
    length = int(checkpoint.state["events_bytes"])
    size = events_path.stat().st_size if events_path is not None else length
    if size < length:
        raise CheckpointError(
            f"{events_path}: {size} bytes, shorter than the {length} it had at {checkpoint.path.name}; "
            "the run directory does not belong to this checkpoint"
        )
    return length
