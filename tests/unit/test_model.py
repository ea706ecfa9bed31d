import pytest
import torch

from atft.config import load_config
from atft.model import ATFT

HORIZONS = [1, 5, 10, 20]
N, T, F, M = 12, 6, 5, 3


def _model(*sets: str) -> ATFT:
    cfg = load_config(None, ["model.hidden_size=16", "model.attention_heads=2", "model.graph.heads=[4, 2]", *sets])
    torch.manual_seed(0)
    return ATFT(cfg.model, F, M, HORIZONS, torch.tensor([0.01, 0.02, 0.03, 0.04])).eval()


def _day(n: int = N, edges: int = 30, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    src, dst = torch.randint(0, n, (2, edges), generator=g)
    keep = src != dst
    edge_index = torch.cat([torch.stack([src[keep], dst[keep]]), torch.stack([dst[keep], src[keep]])], dim=1)
    attr = torch.rand(int(keep.sum()), 3, generator=g)
    return {
        "x": torch.randn(n, T, F, generator=g),
        "x_mask": torch.rand(n, T, F, generator=g) > 0.1,
        "market": torch.randn(T, M, generator=g),
        "market_mask": torch.ones(T, M, dtype=torch.bool),
        "edge_index": edge_index,
        "edge_attr": torch.cat([attr, attr]),
    }


@pytest.mark.parametrize(
    "sets", [[], ["model.norm=fan"], ["model.graph.enabled=false"], ["model.causal_attention=false"]]
)
def test_shapes_and_monotone_quantiles(sets: list[str]) -> None:
    out = _model(*sets)(**_day())
    assert out.quantiles.shape == (N, 4, 5)
    assert out.point.shape == (N, 4) and torch.equal(out.point, out.quantiles[..., 2])
    assert (out.quantiles.diff(dim=-1) > 0).all()
    assert out.selection.shape == (N, T, F)
    assert torch.allclose(out.selection.sum(-1), torch.ones(N, T))
    assert (out.gate is None) == ("model.graph.enabled=false" in sets)


def test_quantiles_cannot_cross_even_for_extreme_inputs() -> None:
    day = _day()
    day["x"] = day["x"] * 1e4
    assert (_model()(**day).quantiles.diff(dim=-1) >= 0).all()


def test_gate_starts_at_one_half() -> None:
    out = _model()(**_day())
    assert out.gate is not None and torch.allclose(out.gate, torch.full_like(out.gate, 0.5))


@pytest.mark.parametrize("norm", ["layernorm", "fan"])
def test_permutation_equivariant_over_the_stocks_of_a_day(norm: str) -> None:
    model, day = _model(f"model.norm={norm}"), _day()
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(3))
    inverse = torch.argsort(perm)
    permuted = dict(day, x=day["x"][perm], x_mask=day["x_mask"][perm], edge_index=inverse[day["edge_index"]])
    assert torch.allclose(model(**day).quantiles[perm], model(**permuted).quantiles, atol=1e-5)


def test_graph_changes_the_forecast_only_when_enabled() -> None:
    day, lonely = _day(), dict(_day(), edge_index=torch.empty(2, 0, dtype=torch.long), edge_attr=torch.empty(0, 3))
    assert not torch.allclose(_model()(**day).point, _model()(**lonely).point)
    ablated = _model("model.graph.enabled=false")
    assert torch.equal(ablated(**day).point, ablated(**lonely).point)


def test_one_stock_and_no_edges_give_finite_outputs() -> None:
    day = _day(n=1, edges=0)
    for sets in ([], ["model.norm=fan"]):
        out = _model(*sets)(**day)
        assert out.quantiles.shape == (1, 4, 5) and torch.isfinite(out.quantiles).all()


def test_fan_never_zeroes_the_last_step() -> None:
    """A constant sequence makes every slice-normalised view 0; the residual keeps the last step."""
    from atft.model.norm import SliceAdaptiveNorm

    norm = SliceAdaptiveNorm(8)
    seq = torch.ones(3, 10, 8) * torch.arange(8.0)
    out = norm(seq)
    assert torch.isfinite(out).all() and out.abs().sum() > 0
    seq2 = seq.clone()
    seq2[:, -1] += torch.randn(3, 8)
    assert not torch.allclose(norm(seq2), out)


def test_causal_attention_ignores_future_steps_of_the_lookback() -> None:
    from atft.model.encoder import TemporalEncoder

    enc = TemporalEncoder(8, 2, causal=True).eval()
    u = torch.randn(4, 6, 8)
    changed = u.clone()
    changed[:, 4:] += 1.0
    assert torch.allclose(enc(u)[:, :4], enc(changed)[:, :4], atol=1e-6)


def test_every_parameter_gets_a_gradient() -> None:
    model = _model("model.norm=fan").train()
    out = model(**_day())
    out.quantiles.sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_parameter_count_at_h256() -> None:
    cfg = load_config(None, ["model.hidden_size=256", "model.attention_heads=8"])
    model = ATFT(cfg.model, 64, 8, HORIZONS, torch.ones(4))
    count = sum(p.numel() for p in model.parameters())
    assert 2_000_000 < count < 4_000_000, count  # README: "Parameter count"


@pytest.mark.parametrize("causal", [True, False])
def test_encoder_keeping_the_last_steps_equals_slicing_a_full_pass(causal: bool) -> None:
    from atft.model.encoder import TemporalEncoder

    enc = TemporalEncoder(8, 2, causal=causal).eval()
    u = torch.randn(4, 7, 8)
    full = enc(u)
    for keep in (1, 3, 7):
        assert torch.allclose(enc(u, keep=keep), full[:, -keep:], atol=1e-6)
