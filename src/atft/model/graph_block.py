"""Graph attention over one day's cross-section, and the gate that mixes it into the temporal embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATv2Conv


class GraphBlock(nn.Module):
    r"""Stacked GATv2 layers over the day's stock graph, each with a residual and LayerNorm.

    Reference: Brody et al., "How Attentive are Graph Attention Networks?" (ICLR 2022).

    .. math::
        h^{(l+1)} = \mathrm{LN}\Big(h^{(l)} + \mathrm{Dropout}\big(\mathrm{ELU}(
            \mathrm{GATv2}^{(l)}(h^{(l)}, \mathcal{E}, e_{ij}))\big)\Big)

    where :math:`e_{ij} = [\rho_{ij}, \text{same sector}, \text{same market}]` (``edge_dim=3``). Each layer
    concatenates ``heads[l]`` heads of size ``hidden / heads[l]``; self-loops are added (with the mean edge
    attribute), so a stock with no edges still attends to itself and a one-stock day is well defined.

    Args:
        hidden (int): :math:`H`, divisible by every entry of ``heads``.
        heads (list[int]): heads per layer. (default in the config: ``[8, 4]``)
        dropout (float, optional): attention and output dropout. (default: ``0.0``)

    Shapes:
        - **input:** h :math:`(n, H)`, edge_index :math:`(2, E)`, edge_attr :math:`(E, 3)`
        - **output:** :math:`(n, H)`
    """

    def __init__(self, hidden: int, heads: list[int], dropout: float = 0.0):
        super().__init__()
        self.hidden, self.heads = hidden, list(heads)
        self.convs = nn.ModuleList(
            GATv2Conv(hidden, hidden // h, heads=h, concat=True, dropout=dropout, edge_dim=3) for h in heads
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in heads)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in [*self.convs, *self.norms]:
            module.reset_parameters()

    def forward(self, h: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = norm(h + self.dropout(F.elu(conv(h, edge_index, edge_attr.to(h.dtype)))))  # (n, H)
        return h

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(hidden={self.hidden}, heads={self.heads})"


class FusionGate(nn.Module):
    r"""Gated residual of the graph and temporal embeddings.

    .. math::
        g = \sigma\big(W [t \,\|\, s] + b\big), \quad z = g \odot s + (1 - g) \odot t

    :math:`W` and :math:`b` start at zero, so :math:`g = 0.5` at initialisation: neither path starts
    switched off, and the gradient tells how far to lean on the graph.

    Args:
        hidden (int): :math:`H`.

    Shapes:
        - **input:** temporal :math:`t` and graph :math:`s`, both :math:`(n, H)`
        - **output:** :math:`(n, H)`, and the gate :math:`(n, H)`
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.gate = nn.Linear(2 * hidden, hidden)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, temporal: Tensor, graph: Tensor) -> tuple[Tensor, Tensor]:
        g = torch.sigmoid(self.gate(torch.cat([temporal, graph], dim=-1)))  # (n, H)
        return g * graph + (1 - g) * temporal, g

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(hidden={self.hidden})"
