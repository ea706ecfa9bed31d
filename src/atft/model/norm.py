"""Adaptive normalisation of the fused embedding. It must never zero the last step.

The predecessor's frequency-adaptive norm removed the "dominant component" of a sequence whose last step
was the only one that mattered, and could return exactly zero there. Both options here keep the input:
LayerNorm (the default) rescales it; the slice-adaptive norm adds a normalised view to it (a residual).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SliceAdaptiveNorm(nn.Module):
    r"""Causal frequency/slice-adaptive normalisation with a residual, read at the last step.

    For trailing slices of the sequence of lengths :math:`L_k` (short slices track high-frequency,
    long slices low-frequency behaviour), each channel of the last step :math:`x_T` is normalised by that
    slice's causal statistics, the views are mixed with learnt softmax weights :math:`\pi`, and added back:

    .. math::
        \hat{x}_k = \frac{x_T - \mu_k}{\sqrt{\sigma_k^2 + \epsilon}}, \quad
        \mu_k, \sigma_k^2 = \text{mean, var of } x_{T-L_k+1..T}, \quad
        y = \mathrm{LN}\Big(x_T + \gamma \odot \sum_k \pi_k \hat{x}_k\Big)

    Only steps :math:`\le T` are used, and the residual :math:`x_T` keeps the last step's information even
    where every :math:`\hat{x}_k` is zero (a constant slice).

    Args:
        hidden (int): :math:`H`.
        slices (list[int]): slice lengths, each clipped to the sequence length. (default: ``[5, 10, 20]``)
        eps (float, optional): (default: ``1e-5``)

    Shapes:
        - **input:** :math:`(n, T, H)`
        - **output:** :math:`(n, H)`
    """

    def __init__(self, hidden: int, slices: tuple[int, ...] = (5, 10, 20), eps: float = 1e-5):
        super().__init__()
        self.hidden, self.slices, self.eps = hidden, tuple(slices), eps
        self.steps = max(slices)  # how many trailing steps of the sequence it reads
        self.mix = nn.Parameter(torch.empty(len(slices)))
        self.gamma = nn.Parameter(torch.empty(hidden))
        self.out = nn.LayerNorm(hidden)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.mix)
        nn.init.constant_(self.gamma, 0.1)
        self.out.reset_parameters()

    def forward(self, seq: Tensor) -> Tensor:
        last = seq[:, -1]  # (n, H)
        views = []
        for length in self.slices:
            window = seq[:, -min(length, seq.shape[1]) :]  # (n, L, H), causal: ends at the last step
            mean, var = window.mean(1), window.var(1, unbiased=False)
            views.append((last - mean) / torch.sqrt(var + self.eps))
        pi = torch.softmax(self.mix, dim=0)
        mixed = torch.einsum("k,knh->nh", pi, torch.stack(views))  # (K, n, H) -> (n, H)
        return self.out(last + self.gamma * mixed)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(hidden={self.hidden}, slices={list(self.slices)})"


class LastStepLayerNorm(nn.Module):
    r"""LayerNorm of the last step: :math:`y = \mathrm{LN}(x_T)`.

    The plain alternative to :class:`SliceAdaptiveNorm` (``model.norm: layernorm``, the default): no
    statistics over the lookback, only the last step's features normalised across channels.

    Args:
        hidden (int): :math:`H`.

    Shapes:
        - **input:** :math:`(n, T, H)`
        - **output:** :math:`(n, H)`
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.steps = 1

    def reset_parameters(self) -> None:
        self.norm.reset_parameters()

    def forward(self, seq: Tensor) -> Tensor:
        return self.norm(seq[:, -1])


def adaptive_norm(kind: str, hidden: int) -> SliceAdaptiveNorm | LastStepLayerNorm:
    """The norm named by ``model.norm``: ``layernorm`` or ``fan`` (slice-adaptive)."""
    return SliceAdaptiveNorm(hidden) if kind == "fan" else LastStepLayerNorm(hidden)
