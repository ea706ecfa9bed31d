"""ATFT-GAT-FAN assembled from :class:`~atft.config.ModelConfig`."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from atft.config import ModelConfig
from atft.model.encoder import GatedResidualNetwork, InputProjection, TemporalEncoder, VariableSelection
from atft.model.graph_block import FusionGate, GraphBlock
from atft.model.heads import QuantileHead, anchor_index
from atft.model.norm import adaptive_norm


class ATFTOutput(NamedTuple):
    """What one forward pass returns (n stocks, H_h horizons, Q quantiles)."""

    quantiles: Tensor  # (n, H_h, Q) forecasts of forward returns, increasing along Q
    point: Tensor  # (n, H_h) the anchor (median) quantile: the score stocks are ranked by
    selection: Tensor  # (n, T, F) variable-selection weights
    gate: Tensor | None  # (n, H) graph gate, None when the graph is disabled
    projected: Tensor  # (n, T, H) projected inputs (activation-gradient hooks attach here)
    normalized: Tensor  # (n, H) output of the adaptive norm (hooks attach here too)


class ATFT(nn.Module):
    r"""Adaptive temporal fusion transformer with graph attention and adaptive normalisation.

    For one trading day's cross-section of :math:`n` stocks:

    .. math::
        c &= W_c [\text{market} \,\|\, m_{\text{market}}] && \text{(per-day market context, } T \times H)\\
        \tilde{x}, w &= \mathrm{VSN}(x, m_x; c) && \text{(variable selection)}\\
        u &= \mathrm{LN}(W_p \tilde{x} + c) && \text{(input projection)}\\
        h &= \mathrm{Encoder}(u) && \text{(LSTM} \parallel \text{attention, fused by a GRN)}\\
        z &= \mathrm{Gate}(h_T, \mathrm{GAT}(h_T, \mathcal{E})) && \text{(graph over the day's stocks)}\\
        y &= \mathrm{Heads}_k(\mathrm{GRN}(\mathrm{Norm}([h_{1..T-1}, z])))\, s_k && \text{(quantiles per horizon)}

    where :math:`s_k` is the per-horizon target scale (the training targets' std), so the heads work in
    standard units and the outputs are returns.

    Args:
        cfg (ModelConfig): sizes and switches.
        n_features (int): per-stock inputs :math:`F`.
        n_market (int): market-context inputs :math:`M` (may be 0).
        horizons (list[int]): forecast horizons in days, one head each.
        target_scale (Tensor): :math:`(H_h,)` std of each horizon's training targets.

    Shapes:
        - **input:** x, x_mask :math:`(n, T, F)`; market, market_mask :math:`(T, M)`;
          edge_index :math:`(2, E)`; edge_attr :math:`(E, 3)`
        - **output:** :class:`ATFTOutput`

    References:
        - B. Lim, S. Ö. Arık, N. Loeff, T. Pfister, "Temporal Fusion Transformers for interpretable
          multi-horizon time series forecasting", International Journal of Forecasting 37(4), 2021: the
          gated residual networks, variable selection and the LSTM ∥ attention encoder.
        - S. Brody, U. Alon, E. Yahav, "How Attentive are Graph Attention Networks?", ICLR 2022: GATv2, the
          attention over each day's stock graph (PyG's ``GATv2Conv``).
        - Z. Liu, M. Cheng, Z. Li, et al., "Adaptive Normalization for Non-stationary Time Series
          Forecasting: A Temporal Slice Perspective", NeurIPS 2023, and W. Ye, S. Deng, Q. Zou, N. Gui,
          "Frequency Adaptive Normalization For Non-stationary Time Series Forecasting", NeurIPS 2024: the
          slice- and frequency-adaptive normalisation that ``model.norm: fan`` follows.
        - R. Koenker, G. Bassett, "Regression Quantiles", Econometrica 46(1), 1978: the pinball loss of the
          quantile heads.
    """

    target_scale: Tensor  # (H_h,) buffer, saved with the weights

    def __init__(self, cfg: ModelConfig, n_features: int, n_market: int, horizons: list[int], target_scale: Tensor):
        super().__init__()
        hidden = cfg.hidden_size
        self.cfg = cfg
        self.n_features, self.n_market, self.horizons = n_features, n_market, list(horizons)
        self.market_context = nn.Linear(2 * n_market, hidden)
        self.variable_selection = VariableSelection(n_features, hidden, hidden, cfg.dropout)
        self.input_projection = InputProjection(hidden)
        self.temporal_encoder = TemporalEncoder(hidden, cfg.attention_heads, cfg.dropout, cfg.causal_attention)
        self.graph_block = GraphBlock(hidden, cfg.graph.heads, cfg.dropout) if cfg.graph.enabled else None
        self.fusion_gate = FusionGate(hidden) if cfg.graph.enabled else None
        self.adaptive_norm = adaptive_norm(cfg.norm, hidden)
        self.shared_head = GatedResidualNetwork(hidden, hidden, hidden, cfg.dropout)
        self.horizon_heads = nn.ModuleList(QuantileHead(hidden, cfg.quantiles) for _ in horizons)
        self.anchor = anchor_index(cfg.quantiles)
        # Fire-drill switches (atft.train.faults), off unless a drill turns them on.
        self.detach_encoder = False
        self.collapse_heads = False
        self.register_buffer("target_scale", target_scale.detach().clone().float())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.components().values():
            module.reset_parameters()  # type: ignore[operator]

    def forward(
        self,
        x: Tensor,
        x_mask: Tensor,
        market: Tensor,
        market_mask: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
    ) -> ATFTOutput:
        context = self.market_context(torch.cat([market, market_mask.to(market.dtype)], dim=-1))  # (T, H)
        selected, weights = self.variable_selection(x, x_mask, context)  # (n, T, H), (n, T, F)
        projected = self.input_projection(selected, context)  # (n, T, H)
        seq = self.temporal_encoder(projected, keep=min(self.adaptive_norm.steps, projected.shape[1]))  # (n, k, H)
        if self.detach_encoder:
            seq = seq.detach()  # drill: no gradient reaches the encoder or anything before it
        last = seq[:, -1]  # (n, H)
        gate = None
        if self.graph_block is not None and self.fusion_gate is not None:
            last, gate = self.fusion_gate(last, self.graph_block(last, edge_index, edge_attr))
        seq = torch.cat([seq[:, :-1], last[:, None]], dim=1)  # (n, k, H), last step replaced by the fusion
        normalized = self.adaptive_norm(seq)  # (n, H)
        shared = self.shared_head(normalized)  # (n, H)
        quantiles = torch.stack([head(shared) for head in self.horizon_heads], dim=1)  # (n, H_h, Q)
        quantiles = quantiles * self.target_scale[:, None]
        if self.collapse_heads:
            quantiles = quantiles.mean(0, keepdim=True).expand_as(quantiles)  # drill: one forecast for every stock
        point = quantiles[..., self.anchor]  # (n, H_h)
        return ATFTOutput(quantiles, point, weights, gate, projected, normalized)

    def components(self) -> dict[str, nn.Module]:
        """Named components, in order (the gradient monitor reports each; heads one per horizon)."""
        named: dict[str, nn.Module] = {
            "market_context": self.market_context,
            "variable_selection": self.variable_selection,
            "input_projection": self.input_projection,
            "temporal_encoder": self.temporal_encoder,
        }
        if self.graph_block is not None and self.fusion_gate is not None:
            named |= {"graph_block": self.graph_block, "fusion_gate": self.fusion_gate}
        named |= {"adaptive_norm": self.adaptive_norm, "shared_head": self.shared_head}
        for h, head in zip(self.horizons, self.horizon_heads, strict=True):
            named[f"head_{h}d"] = head
        return named
