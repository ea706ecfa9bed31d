"""The collapse guard: the per-day dispersion ratio it reads, its EMA, failed checks, the collapse after
``patience`` of them, the reset it asks for, the recovery, and a checkpointed state that decides as the original."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from atft.config import DegeneracyConfig
from atft.health.collapse import DegeneracyGuard, day_std_ratio, reset_head

HORIZONS = [1, 5]
CFG = DegeneracyConfig(min_ratio=0.1, ema=0.5, every=5, warmup_steps=10, patience=2, action="reset")
COLLAPSED, HEALTHY = torch.tensor([0.01, 1.0]), torch.tensor([1.0, 1.0])  # 1d's forecasts all alike, 5d's not


def _guard(**changes: object) -> DegeneracyGuard:
    return DegeneracyGuard(CFG.model_copy(update=changes), HORIZONS)


def _names(events: list) -> list[tuple[str, int | None, str]]:
    return [(e.name, e.horizon, e.severity) for e in events]


def test_day_std_ratio_is_nan_under_three_labelled_stocks_and_std_pred_over_std_target_otherwise() -> None:
    rng = np.random.default_rng(0)
    point, y = rng.normal(size=(10, 2)), rng.normal(size=(10, 2)) * 3
    mask = np.ones((10, 2), dtype=bool)
    mask[2:, 0] = False  # horizon 0: two labelled stocks
    mask[[1, 4], 1] = False  # horizon 1: eight, the other two unlabelled ...
    point[[1, 4], 1], y[[1, 4], 1] = 1e6, np.nan  # ... whatever their values
    ratio = day_std_ratio(torch.tensor(point), torch.tensor(y), torch.tensor(mask))
    assert math.isnan(ratio[0])
    keep = mask[:, 1]
    expected = np.std(point[keep, 1]) / np.std(y[keep, 1])
    assert float(ratio[1]) == pytest.approx(expected, rel=1e-6)  # the guard reads float32


def test_due_after_warmup_every_n_steps_once_a_day_was_read() -> None:
    guard = _guard()
    assert not any(guard.due(s) for s in range(1, 30))  # no reading yet
    guard.update(HEALTHY)
    assert [s for s in range(1, 30) if guard.due(s)] == [15, 20, 25]


def test_the_ema_starts_at_each_horizons_first_reading_then_folds_in_every_day() -> None:
    guard = _guard()
    guard.update(torch.tensor([math.nan, 0.4]))  # no 1d reading on the first day
    guard.update(torch.tensor([0.2, 0.0]))
    guard.update(torch.tensor([0.4, 0.2]))
    assert guard.ema is not None
    torch.testing.assert_close(guard.ema, torch.tensor([0.3, 0.2]))  # ema = 0.5 * old + 0.5 * new


def test_a_day_without_a_reading_leaves_the_ema_as_it_was() -> None:
    guard = _guard()
    guard.update(torch.tensor([0.4, 0.4]))
    guard.update(torch.tensor([math.nan, 0.2]))
    assert guard.ema is not None
    torch.testing.assert_close(guard.ema, torch.tensor([0.4, 0.3]))


def test_a_low_ratio_fails_checks_then_collapses_after_patience_and_asks_for_a_reset() -> None:
    guard = _guard()
    guard.update(COLLAPSED)
    events, resets = guard.check(15)
    assert _names(events) == [("degeneracy_check_failed", 1, "warning")] and resets == []
    assert events[0].value == pytest.approx(0.01) and "(1 in a row)" in events[0].message
    events, resets = guard.check(20)
    assert _names(events) == [("degeneracy_check_failed", 1, "warning"), ("predictions_collapsed", 1, "critical")]
    assert resets == [0] and "action: reset" in events[1].message
    counters = guard.counters()
    assert [counters[f"degeneracy_{n}_1d"] for n in ("checks", "failed", "resets")] == [2, 2, 1]
    assert [counters[f"degeneracy_{n}_5d"] for n in ("checks", "failed", "resets")] == [2, 0, 0]


@pytest.mark.parametrize("action", ["warn", "abort"])
def test_without_action_reset_a_collapse_asks_for_no_reset(action: str) -> None:
    guard = _guard(action=action)
    guard.update(COLLAPSED)
    guard.check(15)
    events, resets = guard.check(20)
    assert "predictions_collapsed" in [e.name for e in events] and resets == []
    assert guard.counters()["degeneracy_resets_1d"] == 0


def test_a_collapsed_horizon_that_passes_again_recovers_once() -> None:
    guard = _guard()
    guard.update(COLLAPSED)
    guard.check(15)
    guard.check(20)
    for _ in range(10):  # the EMA climbs back over the floor
        guard.update(HEALTHY)
    events, _ = guard.check(25)
    assert _names(events) == [("degeneracy_recovered", 1, "info")]
    assert guard.check(30) == ([], [])


def test_a_restored_state_decides_exactly_as_the_original() -> None:
    original = _guard()
    original.update(COLLAPSED)
    original.check(15)  # one bad check in a row: the next bad one collapses
    restored = _guard()
    restored.load_state_dict(copy.deepcopy(original.state_dict()))
    fresh = _guard()

    for guard in (original, restored, fresh):
        guard.update(torch.tensor([0.02, 0.9]))
    decided = [guard.check(20) for guard in (original, restored, fresh)]
    assert _names(decided[1][0]) == _names(decided[0][0]) and decided[1][1] == decided[0][1] == [0]
    assert [e.value for e in decided[1][0]] == pytest.approx([e.value for e in decided[0][0]])
    assert restored.counters() == pytest.approx(original.counters())
    assert decided[2][1] == []  # without the state: a first bad check, no collapse


def test_reset_head_adds_noise_of_the_given_scale_deterministically() -> None:
    torch.manual_seed(0)
    head = nn.Linear(64, 32)
    a, b, c = copy.deepcopy(head), copy.deepcopy(head), copy.deepcopy(head)
    reset_head(a, 0.01, torch.Generator().manual_seed(7))
    reset_head(b, 0.01, torch.Generator().manual_seed(7))
    reset_head(c, 0.01, torch.Generator().manual_seed(8))
    noise = torch.cat([(p - q).detach().flatten() for p, q in zip(a.parameters(), head.parameters(), strict=True)])
    assert float(noise.std()) == pytest.approx(0.01, rel=0.1) and abs(float(noise.mean())) < 0.001
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))  # same seed
    assert not torch.equal(a.weight, c.weight)
