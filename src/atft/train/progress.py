"""How far a training run is: a rich progress bar on a terminal, a plain line per logging step elsewhere.

A pod's log (``kubectl logs``, ``atft logs -f``) is no terminal: a bar there is either nothing or a wall of
redraws. There, :class:`ProgressLines` prints one line at every logged training step (``train.log_every``):

    progress step=250/828 (30%) epoch=0/4 rate=2,814 stock-days/s elapsed=4m10s left=9m38s

Steps are optimizer steps done / in the whole run; ``epoch`` is the epochs done / planned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from atft.config import Config
from atft.health.events import HealthEvent
from atft.telemetry.sinks import write_line
from atft.train.setup import TrainingData


class TrainProgress:
    """A rich progress bar over all epochs' day batches (on stderr; disabled in tests and non-TTY logs)."""

    def __init__(self, epochs: int, days_per_epoch: int, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar = Progress(
            TextColumn("[bold]train[/bold] epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("loss {task.fields[loss]}  val {task.fields[val]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self.task = self.bar.add_task("train", total=epochs * days_per_epoch, epoch=0, rate="", loss="-", val="-")
        if enabled:
            self.bar.start()

    def advance(self, days: int) -> None:
        self.bar.advance(self.task, days)
        speed = self.bar.tasks[0].speed
        if speed:
            self.bar.update(self.task, rate=f"{speed:.1f} days/s")

    def update(self, loss: float) -> None:
        self.bar.update(self.task, loss=f"{loss:.4f}")

    def epoch_done(self, epoch: int, val: float) -> None:
        self.bar.update(self.task, epoch=epoch + 1, val=f"{val:.4f}")

    def close(self) -> None:
        if self.enabled:
            self.bar.stop()


@dataclass(frozen=True)
class TrainPlan:
    """What one run's training amounts to: optimizer steps per epoch and the stock-days of one step."""

    epochs: int
    steps_per_epoch: int
    stock_days_per_step: float

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def train_plan(cfg: Config, data: TrainingData, world_size: int = 1) -> TrainPlan:
    """The plan of the run ``data`` serves, from the very sampler the loop iterates (rank 0's).

    An optimizer step takes ``train.accumulate_days`` day batches on each of ``world_size`` ranks; a day
    batch holds, on average over the epoch, the training days' eligible stocks over the batches they make
    (a day over ``data.max_stocks_per_batch`` is several batches).
    """
    sampler = data.samplers["train"]
    counts = data.dataset.eligible.sum(1)
    days = sorted({day for day, _, _ in sampler.items})
    per_batch = float(counts[days].sum()) / len(sampler.items)
    steps = max(1, len(sampler) // cfg.train.accumulate_days)
    return TrainPlan(cfg.train.epochs, steps, per_batch * cfg.train.accumulate_days * world_size)


class ProgressLines:
    """A metric sink: one plain ``progress`` line on stderr for each ``train`` record (every logging step).

    ``rate`` is the stock-days per second since the previous line (what the machine does now); ``left``
    extrapolates the wall time per step since the pre-flight record (validation passes included, as they
    come; a resumed run, which has no pre-flight, counts from this sink's creation and only its own steps).
    ``start_step``: the step a resumed run starts from. ``clock`` and ``write``: the time source and the line
    writer (tests pass their own).
    """

    def __init__(
        self,
        plan: TrainPlan,
        start_step: int = 0,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[str], None] = write_line,
    ) -> None:
        self.plan, self.start_step, self.clock, self.write = plan, start_step, clock, write
        self.started = clock()
        self.last = (start_step, self.started)

    def log_dict(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if kind == "preflight":
            self.started = self.clock()
            self.last = (self.start_step, self.started)
        if kind != "train":
            return
        plan, now = self.plan, self.clock()
        elapsed, done = now - self.started, step - self.start_step
        where = f"step={step}/{plan.total_steps} ({100 * step / plan.total_steps:.0f}%)"
        where += f" epoch={values.get('epoch', '?')}/{plan.epochs}"
        rate, left = "?", "?"
        if step > self.last[0] and now > self.last[1]:
            per_s = (step - self.last[0]) * plan.stock_days_per_step / (now - self.last[1])
            rate = f"{per_s:,.0f} stock-days/s"
        if done > 0 and elapsed > 0:
            left = duration(elapsed / done * max(0, plan.total_steps - step))
        self.last = (step, now)
        self.write(f"progress {where} rate={rate} elapsed={duration(elapsed)} left={left}")

    def health(self, event: HealthEvent) -> None:
        pass  # a finding has its own line (HealthConsoleSink)

    def close(self) -> None:
        pass


def duration(seconds: float) -> str:
    """``41s``, ``3m25s``, ``2h05m``: the two largest units, for a log line."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
