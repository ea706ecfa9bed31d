"""The job kinds behind ``--target``: one :class:`atft_cli.backends.base.JobBackend` subclass per kind.

``BACKENDS[target]`` is the class a cluster verb builds (``atft_cli.options.backend``); each module imports its
SDK only when a backend is constructed, so ``atft --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atft_cli.backends.base import JobBackend
from atft_cli.backends.pytorchjob import PyTorchJobBackend
from atft_cli.backends.trainjob import TrainJobBackend
from atft_cli.k8s import DEFAULT_TARGET, Target

BACKENDS: dict[Target, type[JobBackend]] = {
    Target.pytorchjob: PyTorchJobBackend,
    Target.trainjob: TrainJobBackend,
}


def target_of(objs: Sequence[dict[str, Any]]) -> Target:
    """The target whose job kind a render holds (a values file may have chosen it); the default when it holds none,
    so that create names what is missing."""
    kinds = {o.get("kind") for o in objs}
    return next((target for target, cls in BACKENDS.items() if cls.kind in kinds), DEFAULT_TARGET)


__all__ = ["BACKENDS", "JobBackend", "PyTorchJobBackend", "TrainJobBackend", "target_of"]
