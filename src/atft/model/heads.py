"""Per-horizon quantile heads whose quantiles cannot cross."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def anchor_index(quantiles: list[float]) -> int:
    """Index of the level nearest 0.5: the quantile used as the point forecast."""
    return min(range(len(quantiles)), key=lambda k: abs(quantiles[k] - 0.5))


class QuantileHead(nn.Module):
    r"""One horizon's quantiles, monotone by construction, anchored at the quantile nearest the median.

    With raw outputs :math:`r \in \mathbb{R}^Q` and anchor index :math:`m`:

    .. math::
        q_m = r_m, \quad q_{k} = q_{k-1} + \mathrm{softplus}(r_k)\ (k > m), \quad
        q_{k} = q_{k+1} - \mathrm{softplus}(r_k)\ (k < m)

    so :math:`q_1 \le \dots \le q_Q` for any input, and the point forecast :math:`q_m` has its own
    unconstrained output.

    Args:
        hidden (int): input size :math:`H`.
        quantiles (list[float]): increasing levels in (0, 1).

    Shapes:
        - **input:** :math:`(n, H)`
        - **output:** :math:`(n, Q)`, increasing along the last axis
    """

    def __init__(self, hidden: int, quantiles: list[float]):
        super().__init__()
        self.hidden, self.quantiles = hidden, list(quantiles)
        self.anchor = anchor_index(quantiles)
        self.proj = nn.Linear(hidden, len(quantiles))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.proj.reset_parameters()

    def forward(self, h: Tensor) -> Tensor:
        raw = self.proj(h)  # (n, Q)
        m = self.anchor
        centre = raw[:, m : m + 1]  # (n, 1)
        up = centre + torch.cumsum(F.softplus(raw[:, m + 1 :]), dim=1)  # (n, Q - m - 1)
        down = centre - torch.cumsum(F.softplus(raw[:, :m].flip(1)), dim=1).flip(1)  # (n, m)
        return torch.cat([down, centre, up], dim=1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(hidden={self.hidden}, quantiles={self.quantiles})"
