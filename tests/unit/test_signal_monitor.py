"""The learning-signal monitor's statistics: the evaluation's RankIC and overlap-correct t, events, state."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from atft.config import SignalConfig
from atft.metrics.inference import mean_inference
from atft.train.health import SignalMonitor

HORIZONS = [1, 5, 20]


def _monitor(window: int = 50, z: float = 2.0) -> SignalMonitor:
    return SignalMonitor(SignalConfig(window=window, warmup_steps=0, z=z), HORIZONS, ["a", "b"])


def _feed(monitor: SignalMonitor, rows: np.ndarray) -> None:
    for row in rows:
        monitor.update(torch.tensor(row, dtype=torch.float32), torch.ones(2), torch.ones(2, dtype=torch.bool))


def test_summary_is_mean_inference_of_each_horizons_window_without_nan_days() -> None:
    rows = np.random.default_rng(0).normal(0.02, 0.1, size=(80, 3)).astype(np.float32)
    rows[[3, 17], 1] = np.nan  # days without a 5d RankIC
    monitor = _monitor(window=60)
    _feed(monitor, rows)
    out = monitor.summary()
    for k, h in enumerate(HORIZONS):
        col = rows[-60:, k].astype(np.float64)
        expected = mean_inference(col[~np.isnan(col)], horizon=h)
        assert out[f"train_rank_ic_{h}d"] == pytest.approx(expected.mean, rel=1e-12)
        assert out[f"train_rank_ic_t_{h}d"] == pytest.approx(expected.t, rel=1e-12)
    assert _monitor().summary() == {}


def test_noise_fires_no_learning_signal_and_a_signal_recovers_it() -> None:
    rng = np.random.default_rng(3)
    monitor = _monitor(window=100, z=2.0)
    _feed(monitor, rng.normal(0.0, 0.1, size=(100, 3)) + np.array([0.0, 0.0, 0.08]))  # 20d learns, 1d and 5d do not
    events = monitor.check(step=10)
    assert [(e.name, e.horizon) for e in events] == [("no_learning_signal", 1), ("no_learning_signal", 5)]
    assert "t = " in events[0].message
    _feed(monitor, rng.normal(0.08, 0.1, size=(100, 3)))
    events = monitor.check(step=20)
    assert [(e.name, e.horizon) for e in events] == [("learning_signal_recovered", 1), ("learning_signal_recovered", 5)]


def test_t_is_nan_and_fires_when_the_window_is_constant() -> None:
    monitor = _monitor(window=20)
    _feed(monitor, np.full((20, 3), 0.05))
    assert math.isnan(monitor.summary()["train_rank_ic_t_5d"])
    assert {e.horizon for e in monitor.check(step=1) if e.name == "no_learning_signal"} == set(HORIZONS)


def test_state_dict_keeps_its_layout_and_a_restored_monitor_decides_identically() -> None:
    rows = np.random.default_rng(2).normal(0.01, 0.1, size=(70, 3))
    monitor = _monitor(window=50)
    _feed(monitor, rows)
    state = monitor.state_dict()
    assert set(state) == {"rank_ic", "gate_sum", "varying", "days", "silent", "dead"}
    assert len(state["rank_ic"]) == 50 and all(r.shape == (3,) for r in state["rank_ic"])
    restored = _monitor(window=50)
    restored.load_state_dict(state)
    assert restored.summary() == monitor.summary()  # the same rows: bit-identical statistics
    assert [e.record() for e in restored.check(step=5)] == [e.record() for e in monitor.check(step=5)]
