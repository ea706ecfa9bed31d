"""The gradient monitor names a component that gets no or a vanishing gradient, or an exploding one, at the first
step and every N; the activation hooks report the gradient that reached a module until they are removed."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from atft.config import GradMonitorConfig
from atft.health.gradients import ActivationGradients, GradientMonitor

CFG = GradMonitorConfig(every=10, warn_norm=1e-7, max_norm=1e4)


def _components(seed: int = 0) -> dict[str, nn.Linear]:
    torch.manual_seed(seed)
    return {name: nn.Linear(4, 2) for name in ("alive", "tiny", "dead", "huge")}


def _backward(parts: dict[str, nn.Linear], scales: dict[str, float]) -> None:
    """One backward of sum(scale * part(x)) over the parts named in ``scales``; the others get no gradient."""
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    torch.stack([scale * parts[name](x).sum() for name, scale in scales.items()]).sum().backward()


def test_due_at_the_first_step_and_every_n() -> None:
    monitor = GradientMonitor({}, CFG)
    assert [s for s in range(1, 41) if monitor.due(s)] == [1, 10, 20, 30, 40]
    off = GradientMonitor({}, GradMonitorConfig(enabled=False, every=10))
    assert not any(off.due(s) for s in range(1, 41))


def test_measure_reports_the_l2_norm_the_largest_tensor_and_the_tensors_without_gradient() -> None:
    parts = _components()
    _backward(parts, {"alive": 1.0, "tiny": 1e-12})
    stats = GradientMonitor(parts, CFG).measure()
    norms = [float(p.grad.norm()) for p in parts["alive"].parameters() if p.grad is not None]
    assert stats["alive"]["l2"] == pytest.approx(math.hypot(*norms), rel=1e-6)
    assert stats["alive"]["max"] == pytest.approx(max(norms), rel=1e-6)
    assert (stats["alive"]["none"], stats["alive"]["small"]) == (0, 0)
    assert (stats["tiny"]["none"], stats["tiny"]["small"]) == (0, 2)  # weight and bias both under warn_norm
    assert stats["dead"] == {"l2": 0.0, "max": 0.0, "none": 2, "small": 0}


def test_no_or_a_tiny_gradient_is_vanishing_and_a_huge_one_exploding_each_naming_its_component() -> None:
    parts = _components()
    _backward(parts, {"alive": 1.0, "tiny": 1e-12, "huge": 1e8})
    monitor = GradientMonitor(parts, CFG)
    events = monitor.events(monitor.measure(), step=20)
    assert [(e.name, e.component, e.severity, e.step) for e in events] == [
        ("vanishing_gradient", "tiny", "critical", 20),
        ("vanishing_gradient", "dead", "critical", 20),
        ("exploding_gradient", "huge", "critical", 20),
    ]
    dead = events[1]
    assert dead.value == 0.0 and "(2 tensors without gradient, 0 under the threshold)" in dead.message
    assert events[2].value is not None and events[2].value > CFG.max_norm and f"> {CFG.max_norm:g}" in events[2].message


def test_a_non_finite_gradient_is_exploding() -> None:
    parts = _components()
    _backward(parts, {"alive": 1.0})
    grad = parts["alive"].bias.grad
    assert grad is not None
    grad[0] = math.inf
    monitor = GradientMonitor({"alive": parts["alive"]}, CFG)
    (event,) = monitor.events(monitor.measure(), step=1)
    assert (event.name, event.component) == ("exploding_gradient", "alive") and event.value == math.inf


def test_activation_hooks_report_the_gradient_norm_that_reached_the_module_until_removed() -> None:
    layer = nn.Linear(3, 2)
    hooks = ActivationGradients({"projected": layer})
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    upstream = torch.randn(5, 2, generator=torch.Generator().manual_seed(3))
    (layer(x) * upstream).sum().backward()  # d loss / d output = upstream
    assert hooks.read() == {"projected": pytest.approx(float(upstream.norm()), rel=1e-6)}

    hooks.remove()
    (layer(x) * 2 * upstream).sum().backward()  # no hook now: the reading stays that of the first backward
    assert hooks.read() == {"projected": pytest.approx(float(upstream.norm()), rel=1e-6)}


def test_activation_hooks_skip_a_forward_without_gradient() -> None:
    layer = nn.Linear(3, 2)
    hooks = ActivationGradients({"projected": layer})
    with torch.no_grad():
        layer(torch.randn(4, 3))
    assert hooks.read() == {}
