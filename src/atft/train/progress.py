"""The console progress bar of a training run: days/s, the latest loss and the latest validation metric."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


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
