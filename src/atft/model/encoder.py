"""The temporal half of ATFT: variable selection, input projection and the LSTM ∥ attention encoder.

Reference: Lim et al., "Temporal Fusion Transformers for Interpretable Multi-horizon Time Series
Forecasting" (2021) -- gated residual networks, variable selection, LSTM + self-attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GatedResidualNetwork(nn.Module):
    r"""TFT's gated residual network.

    .. math::
        \eta_2 = \mathrm{ELU}(W_2 a + W_3 c + b_2), \quad \eta_1 = W_1 \eta_2 + b_1, \quad
        \mathrm{GRN}(a, c) = \mathrm{LayerNorm}\big(\mathrm{skip}(a) + \mathrm{GLU}(\eta_1)\big)

    Args:
        in_dim (int): size of the input :math:`a`.
        hidden (int): size of :math:`\eta_2`.
        out_dim (int): output size; ``skip`` is a linear map when it differs from ``in_dim``.
        dropout (float, optional): dropout on :math:`\eta_1`. (default: ``0.0``)
        context_dim (int, optional): size of the context :math:`c`; no context if ``None``. (default: ``None``)

    Shapes:
        - **input:** :math:`a` of shape :math:`(*, \text{in\_dim})`, :math:`c` broadcastable to
          :math:`(*, \text{context\_dim})`
        - **output:** :math:`(*, \text{out\_dim})`
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0, context_dim: int | None = None):
        super().__init__()
        self.in_dim, self.hidden, self.out_dim = in_dim, hidden, out_dim
        self.w2 = nn.Linear(in_dim, hidden)
        self.w3 = nn.Linear(context_dim, hidden, bias=False) if context_dim is not None else None
        self.w1 = nn.Linear(hidden, 2 * out_dim)
        self.skip = nn.Linear(in_dim, out_dim) if in_dim != out_dim else None
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in (self.w2, self.w3, self.w1, self.skip):
            if layer is not None:
                layer.reset_parameters()
        self.norm.reset_parameters()

    def forward(self, a: Tensor, context: Tensor | None = None) -> Tensor:
        eta = self.w2(a)
        if self.w3 is not None and context is not None:
            eta = eta + self.w3(context)
        eta = self.w1(F.elu(eta))  # (*, 2 * out)
        gated = F.glu(self.dropout(eta), dim=-1)  # (*, out)
        return self.norm((a if self.skip is None else self.skip(a)) + gated)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_dim}, {self.hidden}, {self.out_dim})"


class VariableSelection(nn.Module):
    r"""Variable selection network with linear per-feature embeddings, gated per timestep.

    Each feature :math:`j` (value :math:`x_j`, observed flag :math:`m_j`) is embedded as
    :math:`e_j = x_j A_j + m_j B_j + C_j \in \mathbb{R}^H`; a GRN over all raw inputs (and the day's market
    context) gives softmax selection weights :math:`w_t \in \Delta^F` per timestep, and

    .. math::
        \tilde{x}_t = \sum_j w_{t,j}\, e_{t,j} = (w_t \odot x_t) A + (w_t \odot m_t) B + w_t C

    so the selection is computed with three matrix products and never materialises the
    :math:`(n, T, F, H)` embedding tensor (5 GB for a 3,800-stock day at H=256).

    Args:
        n_features (int): :math:`F`.
        hidden (int): :math:`H`.
        context_dim (int): size of the market context fed to the selection GRN.
        dropout (float, optional): (default: ``0.0``)

    Shapes:
        - **input:** x, mask :math:`(n, T, F)`; context :math:`(T, \text{context\_dim})`
        - **output:** selected :math:`(n, T, H)`, weights :math:`(n, T, F)`
    """

    def __init__(self, n_features: int, hidden: int, context_dim: int, dropout: float = 0.0):
        super().__init__()
        self.n_features, self.hidden = n_features, hidden
        self.value = nn.Parameter(torch.empty(n_features, hidden))  # A
        self.observed = nn.Parameter(torch.empty(n_features, hidden))  # B
        self.offset = nn.Parameter(torch.empty(n_features, hidden))  # C
        self.selector = GatedResidualNetwork(2 * n_features, hidden, n_features, dropout, context_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in (self.value, self.observed, self.offset):
            nn.init.normal_(p, std=self.n_features**-0.5)
        self.selector.reset_parameters()

    def forward(self, x: Tensor, mask: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        m = mask.to(x.dtype)
        weights = torch.softmax(self.selector(torch.cat([x, m], dim=-1), context), dim=-1)  # (n, T, F)
        selected = (weights * x) @ self.value + (weights * m) @ self.observed + weights @ self.offset  # (n, T, H)
        return selected, weights

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(features={self.n_features}, hidden={self.hidden})"


class TemporalEncoder(nn.Module):
    r"""LSTM ∥ multi-head self-attention + FFN over the lookback, fused by a gated residual network.

    .. math::
        h^{\text{lstm}} = \mathrm{LSTM}(u), \quad
        h^{\text{attn}} = z + \mathrm{FFN}(z),\ z = \mathrm{LN}(u + \mathrm{MHA}(u, u, u)), \quad
        h = \mathrm{GRN}([h^{\text{lstm}} \,\|\, h^{\text{attn}}])

    Args:
        hidden (int): :math:`H`.
        heads (int): attention heads (must divide ``hidden``).
        dropout (float, optional): (default: ``0.0``)
        causal (bool, optional): each step attends only to itself and earlier steps. (default: ``True``)

    Only the last ``keep`` steps are returned, and the attention, FFN and fusion run only for them (the
    LSTM still reads the whole lookback): the same numbers as slicing a full pass, at a fraction of the cost
    when the rest of the model reads only the last step.

    Shapes:
        - **input:** :math:`(n, T, H)`, ``keep`` :math:`\le T`
        - **output:** :math:`(n, \text{keep}, H)`
    """

    def __init__(self, hidden: int, heads: int, dropout: float = 0.0, causal: bool = True):
        super().__init__()
        self.hidden, self.heads, self.causal = hidden, heads, causal
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.attention = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.attention_norm = nn.LayerNorm(hidden)
        self.ffn_in, self.ffn_out = nn.Linear(hidden, 2 * hidden), nn.Linear(2 * hidden, hidden)
        self.ffn_dropout = nn.Dropout(dropout)
        self.ffn_norm = nn.LayerNorm(hidden)
        self.fuse = GatedResidualNetwork(2 * hidden, hidden, hidden, dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lstm.reset_parameters()
        self.attention._reset_parameters()
        for module in (self.attention_norm, self.ffn_norm, self.ffn_in, self.ffn_out, self.fuse):
            module.reset_parameters()

    def forward(self, u: Tensor, keep: int | None = None) -> Tensor:
        steps = u.shape[1]
        keep = steps if keep is None else keep
        lstm_out, _ = self.lstm(u)  # (n, T, H)
        lstm_out, query = lstm_out[:, -keep:], u[:, -keep:]  # (n, keep, H)
        mask = None
        if self.causal:  # query i sits at step T - keep + i and may see keys 0..T - keep + i
            mask = torch.ones(keep, steps, dtype=torch.bool, device=u.device).triu(steps - keep + 1)
        attended, _ = self.attention(query, u, u, attn_mask=mask, need_weights=False)  # (n, keep, H)
        z = self.attention_norm(query + attended)
        z = self.ffn_norm(z + self.ffn_out(self.ffn_dropout(F.gelu(self.ffn_in(z)))))
        return self.fuse(torch.cat([lstm_out, z], dim=-1))  # (n, keep, 2H) -> (n, keep, H)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(hidden={self.hidden}, heads={self.heads}, causal={self.causal})"


class InputProjection(nn.Module):
    r"""Project the selected inputs and add the day's market context: :math:`u = \mathrm{LN}(W \tilde{x} + b + c)`.

    The market context :math:`c` (one row per lookback step, shared by every stock of the day) enters
    additively before the LayerNorm, so each stock's embedding is read relative to the day's market state.

    Args:
        hidden (int): :math:`H`, the width of the selected inputs, the context and the output.

    Shapes:
        - **input:** selected :math:`(n, T, H)`, context :math:`(T, H)`
        - **output:** :math:`(n, T, H)`
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.linear = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.linear.reset_parameters()
        self.norm.reset_parameters()

    def forward(self, selected: Tensor, context: Tensor) -> Tensor:
        return self.norm(self.linear(selected) + context)
