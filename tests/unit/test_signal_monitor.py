"""The learning-signal monitor's statistics (the evaluation's RankIC and overlap-correct t), its two checks (the
rolling warning, the epoch-end verdict), their events and state."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from atft.config import SignalConfig
from atft.health.events import HealthEvent
from atft.health.signal import SignalMonitor
from atft.metrics.inference import mean_inference
from atft.telemetry.sinks import HealthConsoleSink

HORIZONS = [1, 5, 20]


def _monitor(window: int = 50, z: float = 2.0, min_periods: int = 100) -> SignalMonitor:
    cfg = SignalConfig(window=window, warmup_steps=0, z=z, min_periods=min_periods)
    return SignalMonitor(cfg, HORIZONS, ["a", "b"])


def _feed(monitor: SignalMonitor, rows: np.ndarray, days: np.ndarray | None = None) -> None:
    """Feed rows as training serves them; ``days`` their calendar days (default: in calendar order)."""
    days = np.arange(monitor.days, monitor.days + len(rows)) if days is None else days
    for row, day in zip(rows, days, strict=True):
        day_tensor = torch.tensor(float(day))
        monitor.update(
            torch.tensor(row, dtype=torch.float32), torch.ones(2), torch.ones(2, dtype=torch.bool), day_tensor
        )


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


def test_noise_warns_weak_learning_signal_and_a_signal_recovers_it() -> None:
    rng = np.random.default_rng(3)
    monitor = _monitor(window=100, z=2.0)
    _feed(monitor, rng.normal(0.0, 0.1, size=(100, 3)) + np.array([0.0, 0.0, 0.08]))  # 20d learns, 1d and 5d do not
    events = monitor.check(step=10)
    assert [(e.name, e.horizon, e.severity) for e in events] == [
        ("weak_learning_signal", 1, "warning"),
        ("weak_learning_signal", 5, "warning"),
    ]
    assert "over 100 days is not above noise (t = " in events[0].message
    _feed(monitor, rng.normal(0.08, 0.1, size=(100, 3)))
    events = monitor.check(step=20)
    assert [(e.name, e.horizon) for e in events] == [("learning_signal_recovered", 1), ("learning_signal_recovered", 5)]


def test_t_is_nan_and_warns_when_the_window_is_constant() -> None:
    monitor = _monitor(window=20)
    _feed(monitor, np.full((20, 3), 0.05))
    assert math.isnan(monitor.summary()["train_rank_ic_t_5d"])
    assert {e.horizon for e in monitor.check(step=1) if e.name == "weak_learning_signal"} == set(HORIZONS)


def test_state_dict_round_trip_mid_epoch_decides_identically() -> None:
    """A checkpoint mid-epoch keeps the epoch's days: the resumed monitor's checks and verdict are bit-identical."""
    rng = np.random.default_rng(2)
    monitor = _monitor(window=50)
    _feed(monitor, rng.normal(0.01, 0.1, size=(70, 3)))
    state = monitor.state_dict()
    assert set(state) == {
        *("rank_ic", "calendar", "epoch_rank_ic", "epoch_calendar"),
        *("gate_sum", "varying", "days", "weak", "missing", "dead"),
    }
    assert len(state["rank_ic"]) == 50 and all(r.shape == (3,) for r in state["rank_ic"])
    assert len(state["epoch_rank_ic"]) == len(state["epoch_calendar"]) == 70
    restored = _monitor(window=50)
    restored.load_state_dict(state)
    assert restored.summary() == monitor.summary()  # the same rows: bit-identical statistics
    assert [e.fields() for e in restored.check(step=5)] == [e.fields() for e in monitor.check(step=5)]
    rest = rng.normal(0.01, 0.1, size=(40, 3))
    _feed(monitor, rest)
    _feed(restored, rest)
    (events, stats), (restored_events, restored_stats) = monitor.end_epoch(step=9), restored.end_epoch(step=9)
    assert restored_stats == stats and len(stats) == 2 * len(HORIZONS)
    assert [e.fields() for e in restored_events] == [e.fields() for e in events]
    assert restored.state_dict()["missing"] == monitor.state_dict()["missing"]


def _overlapping(n: int, h: int, mean: float, rng: np.random.Generator) -> np.ndarray:
    """A daily series in calendar order that overlaps like h-day returns: a moving sum of h shocks."""
    shocks = rng.normal(0.0, 1.0, size=n + h - 1)
    return mean + 0.1 * np.convolve(shocks, np.ones(h) / np.sqrt(h), mode="valid")


def test_the_window_is_judged_in_calendar_order_whatever_order_training_served_it() -> None:
    """Shuffled serving hides the overlap of h-day labels from the lag; sorted by day the error sees it."""
    rng = np.random.default_rng(5)
    series = np.stack([_overlapping(300, 20, 0.01, rng)] * 3, axis=1)  # (days, H)
    served = rng.permutation(300)
    in_order, shuffled = _monitor(window=300), _monitor(window=300)
    _feed(in_order, series)
    _feed(shuffled, series[served], days=served)
    assert shuffled.summary() == in_order.summary()
    t_calendar = in_order.summary()["train_rank_ic_t_20d"]
    t_served = mean_inference(series[served, 2], horizon=20).t  # what the monitor computed before: served order
    assert abs(t_served) > 1.5 * abs(t_calendar)


def test_a_model_that_ranks_its_training_days_backwards_is_not_learning() -> None:
    monitor = _monitor(window=100, z=2.0)
    _feed(monitor, np.random.default_rng(4).normal(-0.08, 0.1, size=(100, 3)))
    assert {e.horizon for e in monitor.check(step=1) if e.name == "weak_learning_signal"} == set(HORIZONS)
    assert {e.horizon for e in monitor.end_epoch(step=1)[0] if e.name == "no_learning_signal"} == set(HORIZONS)


# --- the epoch-end verdict: all of an epoch's days, in calendar order ------------------------------------------

EPOCH_DAYS = 1000  # about an epoch of the S&P 500 panel's training days


def _epoch(
    final: float, rng: np.random.Generator, std: float = 0.05, learn: int = 400
) -> tuple[np.ndarray, np.ndarray]:
    """An epoch's per-day RankIC rows (days, H) in the order training serves the days (shuffled), and those days.

    The model learns as the epoch goes: its mean RankIC on the i-th day served is ``final * min(1, i / learn)``.
    The noise, per-day std ``std`` (0.05: about the sampling noise of a 500-stock cross-section's RankIC),
    overlaps in calendar order like each horizon's h-day labels.
    """
    noise = np.stack([_overlapping(EPOCH_DAYS, h, 0.0, rng) * std / 0.1 for h in HORIZONS], axis=1)
    served = rng.permutation(EPOCH_DAYS)
    mean = final * np.minimum(1.0, np.arange(EPOCH_DAYS) / learn)
    return mean[:, None] + noise[served], served


def _rolling_checks(monitor: SignalMonitor, rows: np.ndarray, days: np.ndarray, every: int = 25) -> list[HealthEvent]:
    """Feed the epoch as training does, checking the rolling window every ``every`` days (a logging step)."""
    events = []
    for start in range(0, len(rows), every):
        _feed(monitor, rows[start : start + every], days[start : start + every])
        events += monitor.check(step=monitor.days)
    return events


def test_noise_warns_then_fails_the_epoch_verdict_on_every_horizon() -> None:
    monitor = _monitor(window=200)
    rolling = _rolling_checks(monitor, *_epoch(0.0, np.random.default_rng(11)))
    weak = [e for e in rolling if e.name == "weak_learning_signal"]
    assert {e.horizon for e in weak} == set(HORIZONS) and {e.severity for e in weak} == {"warning"}
    assert min(e.step for e in weak) == 200  # the first check with a full window
    assert not any(e.severity == "critical" for e in rolling)  # the rolling check never pages
    events, stats = monitor.end_epoch(step=EPOCH_DAYS)
    assert [(e.name, e.horizon, e.severity) for e in events] == [
        ("no_learning_signal", h, "critical") for h in HORIZONS
    ]
    assert f"over the epoch's {EPOCH_DAYS} days is not above noise" in events[0].message
    assert all(stats[f"epoch_train_rank_ic_t_{h}d"] < 2.0 for h in HORIZONS)
    assert monitor.epoch_rank_ic == [] and monitor.end_epoch(step=EPOCH_DAYS + 1) == ([], {})  # the next epoch: empty


def test_a_small_real_signal_passes_the_epoch_verdict_though_the_rolling_window_dips_under_z() -> None:
    """A model that learns to a RankIC of 0.04 over the first 400 days (epoch mean ~0.03): early windows of 200 days
    cannot tell it from noise, the epoch's 1,000 days can at every horizon (t ~ 20, 10, 5; at 20d the labels'
    overlap leaves ~50 independent days, so that is the thin margin: 1% of seeds fail there)."""
    monitor = _monitor(window=200)
    rolling = _rolling_checks(monitor, *_epoch(0.04, np.random.default_rng(7000)))
    assert {e.horizon for e in rolling if e.name == "weak_learning_signal"} == {5, 20}
    events, stats = monitor.end_epoch(step=EPOCH_DAYS)
    assert events == []
    assert all(stats[f"epoch_train_rank_ic_t_{h}d"] >= 2.0 for h in HORIZONS), stats
    assert stats["epoch_train_rank_ic_1d"] == pytest.approx(0.032, abs=0.005)


def test_the_epoch_verdict_is_mean_inference_of_the_epochs_days_in_calendar_order() -> None:
    rows, served = _epoch(0.01, np.random.default_rng(13))
    monitor = _monitor(window=200)
    _feed(monitor, rows, served)
    stats = monitor.end_epoch(step=1)[1]
    in_order = rows[np.argsort(served)].astype(np.float32).astype(np.float64)  # the monitor keeps float32 rows
    for k, h in enumerate(HORIZONS):
        expected = mean_inference(in_order[:, k], horizon=h)
        assert stats[f"epoch_train_rank_ic_{h}d"] == pytest.approx(expected.mean, rel=1e-12)
        assert stats[f"epoch_train_rank_ic_t_{h}d"] == pytest.approx(expected.t, rel=1e-12)


def test_an_epoch_with_fewer_than_window_days_of_a_rankic_gets_no_verdict() -> None:
    rows = np.random.default_rng(14).normal(0.0, 0.1, size=(120, 3))
    rows[:30, 2] = np.nan  # 90 days with a 20d RankIC
    monitor = _monitor(window=100)
    _feed(monitor, rows)
    events, stats = monitor.end_epoch(step=7)
    assert {e.horizon for e in events} == {1, 5}  # noise: judged, and failed
    assert set(stats) == {f"epoch_train_rank_ic{t}_{h}d" for t in ("", "_t") for h in (1, 5)}


def test_a_later_epoch_that_passes_confirms_the_signal() -> None:
    rng = np.random.default_rng(15)
    monitor = _monitor(window=100, min_periods=10)  # 150 days: 5d has the power (30 periods), 20d not (7.5)
    _feed(monitor, rng.normal(0.0, 0.1, size=(150, 3)) + np.array([0.05, 0.0, 0.0]))  # only 1d learns
    assert [e.name for e in monitor.end_epoch(step=150)[0]] == ["no_learning_signal"] * 2
    _feed(monitor, rng.normal(0.05, 0.1, size=(150, 3)))
    events = monitor.end_epoch(step=300)[0]
    assert [(e.name, e.horizon, e.severity) for e in events] == [
        ("learning_signal_confirmed", 5, "info"),
        ("learning_signal_confirmed", 20, "info"),
    ]
    _feed(monitor, rng.normal(0.05, 0.1, size=(150, 3)))
    assert monitor.end_epoch(step=450)[0] == []  # passing again: nothing to clear


# --- the verdict's power: independent periods (days / h) per horizon --------------------------------------------

SHORT_FOLD_DAYS = 828  # the S&P 500 panel's shortest training window (fold 2010): 41 periods at 20d


def _short_fold(means: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """An epoch of the shortest S&P fold, per-day RankIC of std 0.1 overlapping like each horizon's labels."""
    return np.stack([_overlapping(SHORT_FOLD_DAYS, h, m, rng) for h, m in zip(HORIZONS, means, strict=True)], 1)


def test_a_horizon_without_the_power_to_judge_alone_warns_unconfirmed_while_the_powered_ones_pass() -> None:
    """Fold 2010 at seed 2 on the S&P panel: 1d and 5d pass, 20d (41 independent periods) fails at t = 1.43 with a
    real signal. Too few periods to call it missing: a warning that names them, no critical, and a later epoch
    that passes confirms it."""
    monitor = _monitor(window=200)
    _feed(monitor, _short_fold((0.05, 0.05, 0.02), np.random.default_rng(27)))
    events, stats = monitor.end_epoch(step=SHORT_FOLD_DAYS)
    assert stats["epoch_train_rank_ic_t_1d"] >= 2.0 and stats["epoch_train_rank_ic_t_5d"] >= 2.0
    assert stats["epoch_train_rank_ic_t_20d"] < 2.0
    assert [(e.name, e.horizon, e.severity) for e in events] == [("learning_signal_unconfirmed", 20, "warning")]
    assert "they hold 41 independent 20-day periods, under health.signal.min_periods = 100" in events[0].message
    assert events[0].message.endswith("the horizons with enough pass (1d, 5d)")
    _feed(monitor, _short_fold((0.05, 0.05, 0.05), np.random.default_rng(22)))
    assert [(e.name, e.horizon) for e in monitor.end_epoch(step=2 * SHORT_FOLD_DAYS)[0]] == [
        ("learning_signal_confirmed", 20)
    ]


def test_an_underpowered_failure_is_critical_when_a_powered_horizon_fails_too() -> None:
    """Shuffled labels fail every horizon: 1d and 5d with the power make the 20d failure critical as well."""
    monitor = _monitor(window=200)
    _feed(monitor, _short_fold((0.05, 0.0, 0.0), np.random.default_rng(23)))
    events, stats = monitor.end_epoch(step=1)
    assert stats["epoch_train_rank_ic_t_5d"] < 2.0 and stats["epoch_train_rank_ic_t_20d"] < 2.0
    assert [(e.name, e.horizon, e.severity) for e in events] == [
        ("no_learning_signal", 5, "critical"),
        ("no_learning_signal", 20, "critical"),
    ]


def test_min_periods_sets_where_a_failure_is_called_alone() -> None:
    """The same epoch as the fold-2010 case, judged at min_periods = 40: 20d's 41 periods are enough."""
    monitor = _monitor(window=200, min_periods=40)
    _feed(monitor, _short_fold((0.05, 0.05, 0.02), np.random.default_rng(27)))
    assert [(e.name, e.severity) for e in monitor.end_epoch(step=1)[0]] == [("no_learning_signal", "critical")]


def test_a_weak_learning_signal_prints_as_a_warning_never_as_critical(capsys: pytest.CaptureFixture[str]) -> None:
    monitor = _monitor(window=20)
    _feed(monitor, np.full((20, 3), 0.05))
    sink = HealthConsoleSink(plain=True)
    for event in monitor.check(step=40):
        sink.health(event)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and all(line.startswith("WARNING weak_learning_signal horizon=") for line in lines)
    assert "CRITICAL" not in "".join(lines)


def test_an_unconfirmed_signal_prints_as_a_warning_never_as_critical(capsys: pytest.CaptureFixture[str]) -> None:
    monitor = _monitor(window=200)
    _feed(monitor, _short_fold((0.05, 0.05, 0.02), np.random.default_rng(27)))
    sink = HealthConsoleSink(plain=True)
    for event in monitor.end_epoch(step=828)[0]:
        sink.health(event)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("WARNING learning_signal_unconfirmed horizon=20d step=828 value=")
