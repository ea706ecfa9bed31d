"""An exponential moving average of the weights, evaluated and kept in place of the raw weights.

Why: one epoch's weights are a single draw from a noisy walk (the per-day loss of a weak signal is mostly
noise), so the epoch that scores best on the validation days need not be the one that scores best after
them. The average over the last few hundred steps is the centre of that walk; selecting among averages
picks a model rather than a lucky draw (Polyak & Juditsky 1992; the "EMA" of Tarvainen & Valpola 2017 and
of TensorFlow's ``ExponentialMovingAverage``, whose warm-up this follows).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from atft.errors import CheckpointError


class WeightAverage:
    r"""Shadow copies of a model's parameters, updated after each optimizer step:

    .. math::
        \bar\theta_t = d_t \bar\theta_{t-1} + (1 - d_t) \theta_t, \qquad d_t = \min(d, (1 + t) / (10 + t))

    so the first steps do not leave the average stuck near the initial weights. Buffers are not averaged.

    Args:
        model: the module being trained.
        decay: ``d`` in (0, 1); ``0.998`` averages over roughly the last 500 steps.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self._model = model
        self._params = dict(model.named_parameters())
        self._shadow = {name: p.detach().clone() for name, p in self._params.items()}

    def update(self, step: int) -> None:
        """Fold in the weights after optimizer step ``step`` (1-based), in one fused pass over all tensors
        (torch's own EMA update: a kernel per parameter would cost a GPU step several percent)."""
        decay = min(self.decay, (1.0 + step) / (10.0 + step))
        fold = get_ema_multi_avg_fn(decay)
        fold(list(self._shadow.values()), [p.detach() for p in self._params.values()], step)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block the model holds the averaged weights; afterwards its own again, bit for bit."""
        with torch.no_grad():
            own = {name: p.detach().clone() for name, p in self._params.items()}
            for name, param in self._params.items():
                param.copy_(self._shadow[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, param in self._params.items():
                    param.copy_(own[name])

    def state_dict(self) -> dict[str, Tensor]:
        """The averaged model's full state: the shadow parameters and the model's own buffers."""
        return {**self._model.state_dict(), **self._shadow}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Take the shadow parameters from a :meth:`state_dict` (e.g. a checkpoint's)."""
        for name, shadow in self._shadow.items():
            shadow.copy_(state[name])

    def checkpoint_state(self) -> dict[str, Tensor]:
        """What a checkpoint keeps as ``average.safetensors``."""
        return self.state_dict()

    def load_checkpoint_state(self, state: dict[str, Tensor] | None, where: Path) -> None:
        """Take the average back from a checkpoint; one without it cannot continue an averaged run."""
        if state is None:
            raise CheckpointError(f"{where}: no average.safetensors, but train.weight_average is on")
        self.load_state_dict(state)


class NoAverage:
    """``train.weight_average: null``: the identity. The raw weights are what is evaluated, selected and saved,
    through the same calls as :class:`WeightAverage`, so the loop never asks which one it has."""

    def __init__(self, model: nn.Module) -> None:
        self._model = model

    def update(self, step: int) -> None:
        pass

    def applied(self) -> AbstractContextManager[None]:
        return nullcontext()

    def state_dict(self) -> dict[str, Tensor]:
        """The model's own state: what is evaluated."""
        return self._model.state_dict()

    def checkpoint_state(self) -> None:
        """Nothing to keep: a checkpoint has no ``average.safetensors``."""
        return None

    def load_checkpoint_state(self, state: dict[str, Tensor] | None, where: Path) -> None:
        pass


def weight_average(model: nn.Module, decay: float | None) -> WeightAverage | NoAverage:
    """The average ``train.weight_average`` asks for: an EMA of that decay, or the identity when null."""
    return NoAverage(model) if decay is None else WeightAverage(model, decay)
