"""The monitors wired together: every finding counted by name and handed to the sink as a typed event, the
gradient check and the collapse guard acting as configured, and a non-finite value named where it shows first."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from atft.config import load_config
from atft.errors import TrainingFailed
from atft.health.events import HealthEvent
from atft.health.monitors import Monitors, first_nonfinite, stop_nonfinite
from atft.model import ATFT

SMALL_MODEL = ["model.hidden_size=16", "model.attention_heads=2", "model.graph.heads=[4, 2]"]
FEATURES = ["a", "b", "c"]
EVERY_STEP_GUARD = ["health.degeneracy.warmup_steps=0", "health.degeneracy.every=1", "health.degeneracy.patience=1"]


class RecordingSink:
    """A metric sink that keeps what it is given."""

    def __init__(self) -> None:
        self.records: list[tuple[str, int, dict[str, Any]]] = []
        self.events: list[HealthEvent] = []

    def log_dict(self, kind: str, step: int, values: dict[str, Any]) -> None:
        self.records.append((kind, step, values))

    def health(self, event: HealthEvent) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


def _monitors(*sets: str) -> tuple[Monitors, RecordingSink]:
    cfg = load_config(None, [*SMALL_MODEL, *sets])
    torch.manual_seed(0)
    horizons = cfg.data.horizons
    model = ATFT(cfg.model, len(FEATURES), 2, horizons, torch.ones(len(horizons)))
    sink = RecordingSink()
    return Monitors(cfg, model, sink, FEATURES), sink


def _names(events: list[HealthEvent]) -> list[tuple[str, int | None]]:
    return [(e.name, e.horizon) for e in events]


def test_emit_counts_events_by_name_and_hands_each_to_the_sink() -> None:
    monitors, sink = _monitors()
    events = [
        HealthEvent("vanishing_gradient", 1, 0.0, "critical", component="market_context"),
        HealthEvent("exploding_gradient", 1, 1e9, "critical", component="head_5d"),
        HealthEvent("vanishing_gradient", 50, 0.0, "critical", component="market_context"),
    ]
    monitors.emit(events)
    assert sink.events == events and all(a is b for a, b in zip(sink.events, events, strict=True))
    assert monitors.counts == {"vanishing_gradient": 2, "exploding_gradient": 1}
    assert monitors.summary() == {"events/exploding_gradient": 1.0, "events/vanishing_gradient": 2.0}


def test_a_component_without_gradient_is_logged_and_named_and_aborts_when_configured() -> None:
    monitors, sink = _monitors()
    monitors.before_clip(step=1, epoch=0)  # no backward yet: no component has a gradient
    components = monitors.model.components()
    assert [e.component for e in sink.events] == list(components)
    assert {e.name for e in sink.events} == {"vanishing_gradient"}
    (kind, step, record) = sink.records[0]
    assert (kind, step) == ("grad", 1)
    assert record["grad_none/market_context"] == len(list(components["market_context"].parameters()))

    aborting, _ = _monitors("health.grad_monitor.action=abort")
    with pytest.raises(TrainingFailed, match="step 1: vanishing_gradient in market_context"):
        aborting.before_clip(step=1, epoch=0)


def _collapse_horizon_1(monitors: Monitors) -> None:
    monitors.degeneracy.update(torch.tensor([0.0, 1.0, 1.0, 1.0]))  # the 1d forecasts all alike


def _flat(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_a_collapse_resets_its_head_only_by_noise_of_the_logged_scale() -> None:
    monitors, sink = _monitors(*EVERY_STEP_GUARD, "health.degeneracy.reset_scale=0.05")
    heads = monitors.model.horizon_heads
    before = [_flat(head) for head in heads]
    _collapse_horizon_1(monitors)
    monitors.after_step(1)
    assert _names(sink.events) == [
        ("degeneracy_check_failed", 1),
        ("predictions_collapsed", 1),
        ("degeneracy_reset", 1),
    ]
    assert sink.events[-1].value == 0.05 and monitors.counts["degeneracy_reset"] == 1
    moved = [_flat(head) - old for head, old in zip(heads, before, strict=True)]
    assert [bool(m.any()) for m in moved] == [True, False, False, False]
    assert float(moved[0].std()) == pytest.approx(0.05, rel=0.3)  # a sample of ~100 values


def test_a_collapse_aborts_when_configured() -> None:
    monitors, sink = _monitors(*EVERY_STEP_GUARD, "health.degeneracy.action=abort")
    _collapse_horizon_1(monitors)
    with pytest.raises(TrainingFailed, match="step 1: predictions collapsed at horizon 1d"):
        monitors.after_step(1)
    assert "degeneracy_reset" not in monitors.counts and sink.events[-1].name == "predictions_collapsed"


def test_first_nonfinite_names_the_loss_then_the_first_gradient_then_the_first_parameter() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))  # first_nonfinite reads only named_parameters()
    finite = torch.tensor(0.5)
    assert first_nonfinite(finite, model) == "gradient norm (no single tensor)"
    with torch.no_grad():
        model[0].bias[1] = math.nan
    assert first_nonfinite(finite, model) == "parameter 0.bias"
    model[1].weight.grad = torch.full((1, 2), math.inf)
    model[1].bias.grad = torch.full((1,), math.nan)
    assert first_nonfinite(finite, model) == "gradient of 1.weight"  # a gradient before an earlier parameter
    assert first_nonfinite(torch.tensor(math.nan), model) == "loss (nan)"


def test_stop_nonfinite_emits_one_event_keeps_the_weights_and_stops(tmp_path: Path) -> None:
    monitors, sink = _monitors()
    for p in monitors.model.parameters():
        p.grad = torch.zeros_like(p)
    monitors.model.market_context.bias.grad = torch.full_like(monitors.model.market_context.bias, math.nan)
    kept = tmp_path / "nonfinite.safetensors"
    with pytest.raises(TrainingFailed, match=r"step 7: non-finite value, first in gradient of market_context\.bias"):
        stop_nonfinite(monitors, torch.tensor(0.5), 7, kept)
    (event,) = sink.events
    assert (event.name, event.step, event.severity) == ("non_finite", 7, "critical")
    assert event.message == "first non-finite value: gradient of market_context.bias"
    weights, expected = load_file(str(kept)), monitors.model.state_dict()
    assert weights.keys() == expected.keys() and all(torch.equal(weights[k], expected[k]) for k in expected)
