import math

import pytest
import torch
from torch import Tensor

from atft.config import load_config
from atft.train.losses import TERMS, DayLoss, horizon_weights

LEVELS = [0.05, 0.25, 0.5, 0.75, 0.95]


def _toy_day(n: int = 16, seed: int = 0):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(n, 2, generator=g) * 0.02
    point = (0.1 * y + 0.002 * torch.randn(n, 2, generator=g)).requires_grad_(True)
    spread = torch.tensor([-0.03, -0.01, 0.0, 0.01, 0.03])
    quantiles = point[..., None] + spread
    return quantiles, point, y, torch.ones(n, 2, dtype=torch.bool), torch.tensor([0.02, 0.045])


def _loss(*sets: str) -> DayLoss:
    cfg = load_config(None, ["data.horizons=[1, 5]", *sets])
    return DayLoss(cfg.loss, cfg.data.horizons, LEVELS)


def test_default_horizon_weights_are_inverse_sqrt_h() -> None:
    cfg = load_config(None, [])
    w = horizon_weights(cfg.loss, [1, 5, 10, 20])
    raw = torch.tensor([1, 1 / math.sqrt(5), 1 / math.sqrt(10), 1 / math.sqrt(20)])
    assert torch.allclose(w, raw / raw.sum()) and w.sum().item() == pytest.approx(1.0)


def test_total_is_the_weighted_sum_of_the_logged_terms() -> None:
    weights = {"pinball": 0.7, "rank": 0.3, "sharpe": 0.2, "dispersion": 2.0, "listwise": 0.4}
    loss = _loss(*(f"loss.{name}={w}" for name, w in weights.items()), "loss.dispersion_floor=0.9")
    total, terms = loss(*_toy_day())
    assert set(terms) == set(TERMS) == set(weights)
    expected = sum(w * terms[name] for name, w in weights.items())
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert all(v.item() != 0 for v in terms.values())


@pytest.mark.parametrize("term", TERMS)
def test_each_term_has_a_gradient_of_the_right_sign(term: str) -> None:
    """Moving the forecast along the target (better ranking, higher dispersion) must lower each term."""
    sets = [f"loss.{t}={1.0 if t == term else 0.0}" for t in TERMS] + ["loss.dispersion_floor=0.9"]
    loss = _loss(*sets)
    quantiles, point, y, mask, scale = _toy_day()
    total, _ = loss(quantiles, point, y, mask, scale)
    (grad,) = torch.autograd.grad(total, point)
    assert grad.abs().sum() > 0
    if term == "pinball":
        # forecasts below the target are pushed up and vice versa
        assert (torch.sign(-grad[(y - point).abs() > 0.03]) == torch.sign((y - point)[(y - point).abs() > 0.03])).all()
    else:
        # a small step along -grad must lower the term, and the direction correlates with the target
        step = point - 1e-3 * grad / grad.norm()
        lower, _ = loss(step[..., None] + (quantiles - point[..., None]).detach(), step, y, mask, scale)
        assert lower < total
        direction = -grad[:, 0] - (-grad[:, 0]).mean()
        assert torch.dot(direction, y[:, 0] - y[:, 0].mean()) > 0 or term == "dispersion"


def test_dispersion_floor_is_zero_above_the_floor_and_positive_below() -> None:
    quantiles, point, y, mask, scale = _toy_day()
    _, terms = _loss("loss.dispersion_floor=0.01")(quantiles, point, y, mask, scale)
    assert terms["dispersion"].item() == 0.0
    flat = torch.full_like(point, 0.001)
    _, terms = _loss("loss.dispersion_floor=0.5")(flat[..., None].expand_as(quantiles), flat, y, mask, scale)
    assert terms["dispersion"].item() == pytest.approx(0.25 * 1.0, rel=1e-4)  # (0.5 - 0)^2, both horizons weighted


def test_missing_labels_are_ignored_not_zero() -> None:
    quantiles, point, y, mask, scale = _toy_day()
    mask[:5, 1] = False
    y_garbage = y.clone()
    y_garbage[:5, 1] = 1e6
    a, _ = _loss()(quantiles, point, y, mask, scale)
    b, _ = _loss()(quantiles, point, y_garbage, mask, scale)
    assert a.item() == pytest.approx(b.item())


def _indexed_reference(quantiles, point, y, mask, scale, levels, floor, omega):  # type: ignore[no-untyped-def]
    """Each horizon's labelled rows picked out by a boolean index: the formulas of the module docstring."""
    terms = dict.fromkeys(TERMS, 0.0)
    for k in range(y.shape[1]):
        keep = mask[:, k]
        if keep.sum() == 0:
            continue
        yk, pk, qk = y[keep, k] / scale[k], point[keep, k] / scale[k], quantiles[keep, k] / scale[k]
        err = yk[:, None] - qk
        terms["pinball"] += omega[k] * torch.maximum(levels * err, (levels - 1) * err).mean()
        if len(yk) < 3:
            continue
        ranks = torch.empty_like(yk)
        ranks[torch.argsort(yk)] = torch.arange(len(yk), dtype=yk.dtype)
        pc, rc = pk - pk.mean(), ranks - ranks.mean()
        terms["rank"] += omega[k] * (1 - (pc * rc).sum() / (pc.norm() * rc.norm()))
        terms["sharpe"] += omega[k] * -((pc / pc.abs().sum()) * yk).sum() / yk.std(unbiased=False)
        ratio = pk.std(unbiased=False) / yk.std(unbiased=False)
        terms["dispersion"] += omega[k] * torch.relu(floor - ratio) ** 2
        top_target = torch.softmax(rc / rc.std(unbiased=False), 0)
        top_forecast = torch.softmax(pc / pc.std(unbiased=False), 0)
        terms["listwise"] += omega[k] * (top_target * (top_target.log() - top_forecast.log())).sum()
    return terms


def test_masked_terms_equal_the_per_horizon_formulas_whatever_the_unlabelled_rows_hold() -> None:
    g = torch.Generator().manual_seed(3)
    n, levels = 40, torch.tensor(LEVELS)
    y = torch.randn(n, 4, generator=g) * 0.02
    point = 0.2 * y + 0.01 * torch.randn(n, 4, generator=g)
    quantiles = point[..., None] + torch.tensor([-0.03, -0.01, 0.0, 0.01, 0.03])
    mask = torch.rand(n, 4, generator=g) > 0.3
    mask[:, 2] = False  # a horizon without any label that day
    mask[:, 3] = False
    mask[:2, 3] = True  # and one with two: only its pinball term counts
    y[~mask] = math.nan  # what an unlabelled row holds
    point[~mask & (torch.arange(n)[:, None] % 2 == 0)] = math.nan  # even a forecast that went wrong there
    scale = torch.tensor([0.02, 0.045, 0.06, 0.09])
    cfg = load_config(None, ["data.horizons=[1, 5, 10, 20]", "loss.dispersion_floor=0.9"])
    loss = DayLoss(cfg.loss, cfg.data.horizons, LEVELS)
    _, terms = loss(quantiles, point, y, mask, scale)
    expected = _indexed_reference(quantiles, point, y, mask, scale, levels, 0.9, loss.omega)
    for name in TERMS:
        assert terms[name].item() == pytest.approx(float(expected[name]), rel=1e-5, abs=1e-7), name
    total, _ = loss(quantiles, point.requires_grad_(True), y, mask, scale)
    (grad,) = torch.autograd.grad(total, point)
    assert torch.isfinite(grad).all() and (grad[~mask] == 0).all()  # masked rows: no gradient, no NaN


def test_a_rank_target_sees_only_the_order_of_the_returns() -> None:
    """``loss.target: rank`` fits the day's ranks: a monotone distortion of the returns (an outlier blown up,
    the tails cubed) leaves every term unchanged, where the return target moves. Unlabelled rows stay out."""
    quantiles, point, y, mask, scale = _toy_day(n=24)
    mask[3, 0] = mask[7, 1] = False
    y = torch.where(mask, y, torch.nan)
    distorted = torch.where(y > 0.02, y * 50, y) ** 3 * 1e4  # same order in every column, other values
    ranked, returns = _loss("loss.target=rank"), _loss()
    _, by_rank = ranked(quantiles, point, y, mask, scale)
    _, by_rank_distorted = ranked(quantiles, point, distorted, mask, scale)
    _, by_return = returns(quantiles, point, y, mask, scale)
    _, by_return_distorted = returns(quantiles, point, distorted, mask, scale)
    for term in TERMS:
        assert by_rank[term].item() == pytest.approx(by_rank_distorted[term].item(), rel=1e-5, abs=1e-7), term
        assert math.isfinite(by_rank[term].item())
    assert by_return["pinball"].item() != pytest.approx(by_return_distorted["pinball"].item(), rel=1e-2)


def test_a_rank_target_has_unit_spread_in_standard_units() -> None:
    """The ranked target replaces y / scale: centred, unit std over the labelled rows, so the pinball of a zero
    forecast is what it would be for any unit-spread target: mean |y| / 2 at the median, here for uniform ranks."""
    n = 101
    y = torch.linspace(-0.05, 0.05, n)[:, None].repeat(1, 2)
    zero = torch.zeros(n, 2)
    loss = DayLoss(load_config(None, ["data.horizons=[1, 5]", "loss.target=rank"]).loss, [1, 5], [0.5])
    _, terms = loss(zero[..., None], zero, y, torch.ones(n, 2, dtype=torch.bool), torch.tensor([0.02, 0.045]))
    ranks = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
    expected = (ranks / ranks.pow(2).mean().sqrt()).abs().mean() / 2  # pinball at tau = 0.5 is |e| / 2
    assert terms["pinball"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_sector_target_sees_only_what_a_stock_does_beyond_its_sector() -> None:
    """``loss.target: sector`` fits each return less its sector's mean that day: a move shared by a whole sector
    (its own size in each column) leaves every term unchanged, where the return target moves. Unlabelled rows
    neither count in their sector's mean nor get a target."""
    quantiles, point, y, mask, scale = _toy_day(n=24)
    mask[3, 0] = mask[7, 1] = False
    y = torch.where(mask, y, torch.nan)
    sector = torch.arange(24) % 3
    moved = y + torch.tensor([[0.05, -0.02], [-0.03, 0.04], [0.01, 0.0]])[sector]
    cfg = load_config(None, ["data.horizons=[1, 5]", "loss.target=sector"])
    neutral, returns = DayLoss(cfg.loss, [1, 5], LEVELS, n_sectors=3), _loss()
    _, by_sector = neutral(quantiles, point, y, mask, scale, sector)
    _, by_sector_moved = neutral(quantiles, point, moved, mask, scale, sector)
    _, by_return = returns(quantiles, point, y, mask, scale)
    _, by_return_moved = returns(quantiles, point, moved, mask, scale)
    for term in TERMS:
        assert by_sector[term].item() == pytest.approx(by_sector_moved[term].item(), rel=1e-5, abs=1e-7), term
        assert math.isfinite(by_sector[term].item())
    assert by_return["pinball"].item() != pytest.approx(by_return_moved["pinball"].item(), rel=1e-2)
    with pytest.raises(ValueError, match="sector code"):
        neutral(quantiles, point, y, mask, scale)


def test_the_listwise_term_is_zero_in_order_and_weighs_the_top_of_the_day_most() -> None:
    """Swapping the day's two best stocks costs the listwise term more than swapping its two worst, where the
    rank term (every pair alike) charges both the same; a forecast in the target's order at the ranks' spacing
    costs 0, at any scale."""
    n = 30
    y = torch.linspace(-0.05, 0.05, n)[:, None].repeat(1, 2)
    mask, scale = torch.ones(n, 2, dtype=torch.bool), torch.tensor([0.02, 0.045])
    loss = _loss()

    def terms_of(point: Tensor) -> dict[str, float]:
        _, terms = loss(point[..., None], point, y, mask, scale)
        return {name: value.item() for name, value in terms.items()}

    in_order = terms_of(7.0 * y)
    top_swapped, bottom_swapped = y.clone(), y.clone()
    top_swapped[[-1, -2]] = top_swapped[[-2, -1]]
    bottom_swapped[[0, 1]] = bottom_swapped[[1, 0]]
    top, bottom = terms_of(top_swapped), terms_of(bottom_swapped)
    assert in_order["listwise"] == pytest.approx(0.0, abs=1e-6)
    assert top["rank"] == pytest.approx(bottom["rank"], rel=1e-3) and top["rank"] > 0
    assert top["listwise"] > 5 * bottom["listwise"] > 0
