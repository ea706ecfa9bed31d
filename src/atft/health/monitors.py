"""Every health monitor of one run, wired into the loop: what runs after each day, optimizer step, log step
and epoch, and what the run does about a finding (reset a head, stop, keep the weights of a NaN).

``fit`` calls these methods; every finding goes out as a typed :class:`~atft.health.events.HealthEvent`
through the sinks (``events.jsonl``, the console, TensorBoard) and is counted, so the report reads counts,
never greps logs. The monitors: :mod:`atft.health.gradients`, :mod:`atft.health.collapse`,
:mod:`atft.health.signal`.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from atft.config import Config
from atft.errors import TrainingFailed
from atft.health.collapse import DegeneracyGuard, day_std_ratio, reset_head
from atft.health.events import HealthEvent
from atft.health.gradients import ActivationGradients, GradientMonitor
from atft.health.signal import SignalMonitor
from atft.metrics.ranks import day_rank_ic
from atft.model import ATFT, ATFTOutput
from atft.runs.files import atomic_path
from atft.telemetry.sinks import MetricSink
from atft.train.distributed import World, gather_rows


class Monitors:
    """All monitors of one run, and the counters of everything they found."""

    def __init__(
        self, cfg: Config, model: ATFT, sink: MetricSink, features: list[str], world: World | None = None
    ) -> None:
        self.cfg, self.model, self.sink = cfg, model, sink
        self.world = world or World()
        grad_cfg = cfg.health.grad_monitor
        self.grads = GradientMonitor(model.components(), grad_cfg)
        hooked = {"projected": model.input_projection, "normalized": model.adaptive_norm}
        self.activations = ActivationGradients(hooked) if grad_cfg.enabled and grad_cfg.encoder_hooks else None
        self.degeneracy = DegeneracyGuard(cfg.health.degeneracy, model.horizons)
        self.signal = SignalMonitor(cfg.health.signal, model.horizons, features)
        self.counts: Counter[str] = Counter()
        self.no_signal: list[HealthEvent] = []  # the last epoch verdict's no_learning_signal events
        self.generator = torch.Generator().manual_seed(cfg.seed + 1)

    def emit(self, events: list[HealthEvent]) -> None:
        for event in events:
            self.counts[event.name] += 1
            self.sink.health(event)

    def after_day(
        self, out: ATFTOutput, y: torch.Tensor, y_mask: torch.Tensor, x_last: torch.Tensor, day: torch.Tensor
    ) -> None:
        """Per training day (one cross-section): feed the collapse guard and the signal monitor.

        The day's readings travel as one row, ending with the day's calendar index (exact in float32 up to
        16 million days); under DDP every rank's row is gathered (one small all-gather), so every rank's
        monitors hold the same state and decide the same resets and aborts.
        """
        point = out.point.detach()
        gates = out.selection.detach().float().mean((0, 1))  # (F,) mean selection weight per feature
        moves = (x_last.float().std(0, unbiased=False) > 0).float()  # (F,) the feature varies across stocks
        readings = [day_std_ratio(point, y, y_mask).float(), day_rank_ic(point, y, y_mask).float(), gates, moves]
        row = torch.cat([*readings, day.to(gates.device, torch.float32).reshape(1)])
        n_h, n_f = len(self.model.horizons), len(gates)
        for got in gather_rows(row, self.world):
            self.degeneracy.update(got[:n_h])
            flags, calendar_day = got[2 * n_h + n_f : -1] > 0, got[-1]
            self.signal.update(got[n_h : 2 * n_h], got[2 * n_h : 2 * n_h + n_f], flags, calendar_day)

    def before_clip(self, step: int, epoch: int) -> None:
        """At optimizer step ``step`` (1-based), after backward and before clipping: gradient flow."""
        if not self.grads.due(step):
            return
        stats = self.grads.measure()
        record: dict[str, float] = {"epoch": epoch}
        for name, s in stats.items():
            record |= {
                f"grad_norm/{name}": s["l2"],
                f"grad_max/{name}": s["max"],
                f"grad_none/{name}": s["none"],
                f"grad_small/{name}": s["small"],
            }
        if self.activations is not None:
            record |= {f"act_grad/{name}": value for name, value in self.activations.read().items()}
        self.sink.log_dict("grad", step, record)
        events = self.grads.events(stats, step)
        self.emit(events)
        if events and self.cfg.health.grad_monitor.action == "abort":
            raise TrainingFailed(f"step {step}: {events[0].name} in {events[0].component} ({events[0].message})")

    def after_step(self, step: int) -> None:
        """After the optimizer step: the collapse guard acts (reset, abort or warn)."""
        if not self.degeneracy.due(step):
            return
        events, resets = self.degeneracy.check(step)
        self.emit(events)
        cfg = self.cfg.health.degeneracy
        collapsed = [e for e in events if e.name == "predictions_collapsed"]
        if collapsed and cfg.action == "abort":
            raise TrainingFailed(f"step {step}: predictions collapsed at horizon {collapsed[0].horizon}d")
        for k in resets:
            reset_head(self.model.horizon_heads[k], cfg.reset_scale, self.generator)
            h = self.model.horizons[k]
            self.emit(
                [
                    HealthEvent(
                        "degeneracy_reset",
                        step,
                        cfg.reset_scale,
                        "warning",
                        horizon=h,
                        message=f"noise of std {cfg.reset_scale:g} added to the {h}d head",
                    )
                ]
            )

    def at_log(self, step: int) -> dict[str, float]:
        """At logging steps: the rolling learning-signal check (a warning, never an abort); returns the rolling
        training RankIC for the ``signal`` record."""
        self.emit(self.signal.check(step))
        return self.signal.summary() | self.degeneracy.counters()

    def end_epoch(self, step: int) -> dict[str, float]:
        """At an epoch's end: the learning-signal verdict over all the epoch's training days (its events go out
        now); returns its statistics for the ``epoch`` record. The abort it may call for waits for
        :meth:`abort_without_signal`, so that the record is written first and the report can name the t's."""
        events, stats = self.signal.end_epoch(step)
        self.emit(events)
        self.no_signal = [e for e in events if e.name == "no_learning_signal"]
        return stats

    def abort_without_signal(self, step: int) -> None:
        """After the ``epoch`` record: stop the run on this epoch's ``no_learning_signal`` if so configured."""
        if self.no_signal and self.cfg.health.signal.action == "abort":
            where = ", ".join(f"{e.horizon}d" for e in self.no_signal)
            first = self.no_signal[0].message
            raise TrainingFailed(f"step {step}: no learning signal over the epoch at {where} ({first})")

    def summary(self) -> dict[str, float]:
        """``events/<name>``: how many events of each name so far."""
        return {f"events/{name}": float(n) for name, n in sorted(self.counts.items())}

    def counters(self) -> dict[str, float]:
        """What an ``epoch`` record carries: the collapse guard's counters and :meth:`summary`."""
        return self.degeneracy.counters() | self.summary()

    def state_dict(self) -> dict[str, Any]:
        """The monitors' memory (EMAs, rolling windows, counters, the reset noise generator) for a checkpoint."""
        return {
            "counts": dict(self.counts),
            "generator": self.generator.get_state(),
            "degeneracy": self.degeneracy.state_dict(),
            "signal": self.signal.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """A checkpoint loads on the CPU; the monitors' tensors go back to the model's device, where each new
        day's readings are added to them (the noise generator stays on the CPU)."""
        device = next(self.model.parameters()).device
        self.counts = Counter(state["counts"])
        self.generator.set_state(state["generator"])
        self.degeneracy.load_state_dict(_to_device(state["degeneracy"], device))
        self.signal.load_state_dict(_to_device(state["signal"], device))


def _to_device(state: Any, device: torch.device) -> Any:
    """``state`` (dicts, lists and tensors) with every tensor on ``device``."""
    if isinstance(state, torch.Tensor):
        return state.to(device)
    if isinstance(state, dict):
        return {k: _to_device(v, device) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(_to_device(v, device) for v in state)
    return state


def first_nonfinite(loss: torch.Tensor, model: ATFT) -> str:
    """Where a NaN or Inf shows first: the loss, then each gradient, then each parameter (in module order)."""
    if not torch.isfinite(loss):
        return f"loss ({float(loss.detach())})"
    for name, p in model.named_parameters():
        if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
            return f"gradient of {name}"
    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p).all()):
            return f"parameter {name}"
    return "gradient norm (no single tensor)"


def stop_nonfinite(monitors: Monitors, loss: torch.Tensor, step: int, last_checkpoint: Path) -> None:
    """Name the first non-finite tensor, keep the weights for a post-mortem (rank 0), and stop the run."""
    where = first_nonfinite(loss, monitors.model)
    monitors.emit([HealthEvent("non_finite", step, math.nan, "critical", message=f"first non-finite value: {where}")])
    if monitors.world.is_main:
        with atomic_path(last_checkpoint) as tmp:
            save_file({k: v.contiguous().cpu() for k, v in monitors.model.state_dict().items()}, str(tmp))
    raise TrainingFailed(f"step {step}: non-finite value, first in {where}; weights kept in {last_checkpoint}")
