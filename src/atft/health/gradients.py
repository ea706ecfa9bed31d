"""Gradient flow, per named model component: is every part of the model learning, and is any exploding?

* :class:`GradientMonitor` -- every N optimizer steps and at the first: gradient L2 norm, largest tensor
  norm, tensors without gradient and under the warn threshold. ``vanishing_gradient`` names a component under
  the threshold or without gradient; ``exploding_gradient`` one over the ceiling.
* :class:`ActivationGradients` -- hooks on the projected and the normalised features, registered once for
  the whole run, reporting the gradient norm reaching each every N steps.

Both read their tensors (a sync) only when a check is due.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from atft.config import GradMonitorConfig
from atft.health.events import HealthEvent


class GradientMonitor:
    """Per-component gradient statistics after unscaling and before clipping."""

    def __init__(self, components: dict[str, nn.Module], cfg: GradMonitorConfig) -> None:
        self.cfg = cfg
        self.params = {name: list(module.parameters()) for name, module in components.items()}

    def due(self, step: int) -> bool:
        return self.cfg.enabled and (step == 1 or step % self.cfg.every == 0)

    def measure(self) -> dict[str, dict[str, float]]:
        """{component: {l2, max, none, small}}; one host sync for all components."""
        per: dict[str, Tensor] = {}
        missing: dict[str, int] = {}
        for name, params in self.params.items():
            grads = [p.grad for p in params if p.grad is not None]
            missing[name] = len(params) - len(grads)
            per[name] = torch.stack(torch._foreach_norm(grads)).float() if grads else torch.zeros(0)
        stats = {}
        for name, norms in per.items():
            values = norms.cpu()
            stats[name] = {
                "l2": float(values.norm()) if len(values) else 0.0,
                "max": float(values.max()) if len(values) else 0.0,
                "none": float(missing[name]),
                "small": float((values < self.cfg.warn_norm).sum()),
            }
        return stats

    def events(self, stats: dict[str, dict[str, float]], step: int) -> list[HealthEvent]:
        found = []
        for name, s in stats.items():
            if s["l2"] < self.cfg.warn_norm:
                found.append(
                    HealthEvent(
                        "vanishing_gradient",
                        step,
                        s["l2"],
                        "critical",
                        component=name,
                        message=f"gradient L2 norm {s['l2']:.3g} < {self.cfg.warn_norm:g} "
                        f"({int(s['none'])} tensors without gradient, {int(s['small'])} under the threshold)",
                    )
                )
            elif not math.isfinite(s["l2"]) or s["l2"] > self.cfg.max_norm:
                found.append(
                    HealthEvent(
                        "exploding_gradient",
                        step,
                        s["l2"],
                        "critical",
                        component=name,
                        message=f"gradient L2 norm {s['l2']:.3g} > {self.cfg.max_norm:g}",
                    )
                )
        return found


class ActivationGradients:
    """Gradient norms reaching named activations, from hooks registered once and kept for the whole run."""

    def __init__(self, modules: Mapping[str, nn.Module]) -> None:
        self.latest: dict[str, Tensor] = {}
        self.handles = [module.register_forward_hook(self._hook(name)) for name, module in modules.items()]

    def _hook(self, name: str) -> Callable[[nn.Module, object, Tensor], None]:
        def attach(module: nn.Module, inputs: object, output: Tensor) -> None:
            if output.requires_grad:
                output.register_hook(lambda grad: self._store(name, grad))

        return attach

    def _store(self, name: str, grad: Tensor) -> None:
        self.latest[name] = grad.detach()  # a reference, not a copy; its norm is taken only when read

    def read(self) -> dict[str, float]:
        return {name: float(grad.float().norm()) for name, grad in self.latest.items()}

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
