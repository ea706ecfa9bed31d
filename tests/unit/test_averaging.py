"""The weight average: its update rule, the swap in and out of the model, and its state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from atft.train.averaging import WeightAverage


class Scaled(nn.Module):
    """A linear layer and a buffer, like the model's ``target_scale``."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("scale", torch.tensor([2.0, 3.0]))


def test_update_follows_the_warm_up_then_the_decay() -> None:
    model = Scaled()
    start = model.linear.weight.detach().clone()
    average = WeightAverage(model, decay=0.9)
    expected = start.clone()
    for step in (1, 2, 50):
        with torch.no_grad():
            model.linear.weight.add_(1.0)
        average.update(step)
        d = min(0.9, (1 + step) / (10 + step))  # 2/11, 3/12, then the decay itself
        expected = d * expected + (1 - d) * model.linear.weight.detach()
        torch.testing.assert_close(average.state_dict()["linear.weight"], expected)


def test_applied_swaps_the_average_in_and_restores_the_weights_bit_for_bit() -> None:
    model = Scaled()
    average = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.linear.weight.mul_(3.0)
    average.update(100)
    own = {k: v.clone() for k, v in model.state_dict().items()}
    with average.applied():
        assert torch.equal(model.linear.weight, average.state_dict()["linear.weight"])
        assert not torch.equal(model.linear.weight, own["linear.weight"])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in own.items())
    with pytest.raises(RuntimeError, match="inside"), average.applied():
        raise RuntimeError("inside")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in own.items())


def test_state_holds_buffers_and_averaged_parameters_and_loads_back() -> None:
    model = Scaled()
    average = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.linear.bias.fill_(4.0)
    average.update(100)
    state = average.state_dict()
    assert set(state) == set(model.state_dict()) and torch.equal(state["scale"], model.scale)
    fresh = WeightAverage(model, decay=0.5)
    fresh.load_state_dict(state)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items())


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_decay_outside_the_open_interval_is_refused(decay: float) -> None:
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(Scaled(), decay)
