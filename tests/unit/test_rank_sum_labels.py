"""``loss.target: rank_sum``: the training days' labels become h-day sums of each day's ranked 1-day return."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from atft.config import load_config
from atft.data.panel import DensePanel, load_panel
from atft.data.splits import pick, walk_forward
from atft.errors import ConfigError
from atft.runs.files import write_parquet
from atft.train.setup import prepare
from atft.train.targets import daily_rank_sums, standard_ranks
from factories import HORIZONS, make_panel_table

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> DensePanel:
    path = tmp_path_factory.mktemp("p") / "panel.parquet"
    write_parquet(make_panel_table(n_days=40, n_stocks=30, drop=0.1), path)
    return load_panel(path, HORIZONS)


def _by_hand(panel: DensePanel, day: int, stock: int, h: int) -> float:
    """The sum over days day .. day+h-1 of the stock's 1-day return rank, centred and at unit std that day."""
    total = 0.0
    for d in range(day, day + h):
        row = panel.targets[d, :, 0].double().numpy()
        if not np.isfinite(row[stock]):
            return float("nan")
        known = row[np.isfinite(row)]
        rank = (known < row[stock]).sum() + ((known == row[stock]).sum() + 1) / 2  # average rank of ties
        ranks = np.array([(known < v).sum() + ((known == v).sum() + 1) / 2 for v in known])
        total += (rank - ranks.mean()) / ranks.std()
    return total


def test_standard_ranks_are_centred_at_unit_std_and_keep_the_gaps() -> None:
    returns = torch.tensor([[0.03, -0.5, float("nan"), 0.01], [0.0, 0.0, 0.0, float("nan")], [float("nan")] * 4])
    z = standard_ranks(returns)
    assert z[0, 2].isnan() and z[1, 3].isnan()
    known = z[0][torch.isfinite(z[0])]
    assert known.mean().item() == pytest.approx(0.0, abs=1e-12)
    assert known.pow(2).mean().item() == pytest.approx(1.0)
    assert z[0, 1] < z[0, 3] < z[0, 0]  # the order of the returns, not their size
    assert z[1].isnan().all() and z[2].isnan().all()  # no spread, no values: no order


def test_labels_are_sums_of_the_days_standard_ranks(panel: DensePanel) -> None:
    days = range(5, 30)
    out = daily_rank_sums(panel, days)
    checked = gaps = 0
    for day in (5, 12, 29):
        for stock in range(panel.n_stocks):
            for k, h in enumerate(panel.horizons):
                got, expected = out.targets[day, stock, k].item(), _by_hand(panel, day, stock, h)
                if not np.isfinite(panel.targets[day, stock, k].item()):
                    expected = float("nan")
                if np.isfinite(expected):
                    assert got == pytest.approx(expected, rel=1e-5, abs=1e-5), (day, stock, h)
                    checked += 1
                else:  # a day of the window without a 1-day label, or no h-day label
                    assert np.isnan(got), (day, stock, h)
                    gaps += 1
    assert checked > 100 and gaps > 5


def test_only_the_given_days_change(panel: DensePanel) -> None:
    snapshot = panel.targets.clone()
    out = daily_rank_sums(panel, range(5, 30))
    before, after = panel.targets.numpy(), out.targets.numpy()
    np.testing.assert_array_equal(after[:5], before[:5])
    np.testing.assert_array_equal(after[30:], before[30:])
    assert not np.allclose(after[5:30], before[5:30], equal_nan=True)
    np.testing.assert_array_equal(before, snapshot)  # the input is left alone


def test_an_outlier_day_moves_the_label_no_more_than_any_other_top_day(panel: DensePanel) -> None:
    """A 50x move on one day swings the 5-day return; the rank sum sees only that the stock topped that day."""
    stock, day = 0, 10
    targets = panel.targets.clone()
    targets[day + 2, stock, 0] = 0.5  # the stock tops day 12 by a mile
    topped = dataclasses.replace(panel, targets=targets)
    targets = targets.clone()
    targets[day + 2, stock, 0] = 25.0
    outlier = dataclasses.replace(panel, targets=targets)
    a, b = daily_rank_sums(topped, range(0, 35)), daily_rank_sums(outlier, range(0, 35))
    np.testing.assert_array_equal(a.targets[day, :, 1], b.targets[day, :, 1])
    assert np.isfinite(a.targets[day, stock, 1].item())


def test_the_last_days_without_a_full_window_have_no_label(panel: DensePanel) -> None:
    out = daily_rank_sums(panel, range(0, panel.n_days))
    assert out.targets[-4:, :, 1].isnan().all()  # horizon 5 needs the 1-day labels of days d .. d+4
    assert torch.isfinite(out.targets[-6, :, 1]).any()


def test_prepare_relabels_the_training_days_only(debug_panel: Path) -> None:
    cfg = load_config(ROOT / "configs" / "debug.yaml", ["loss.target=rank_sum"])
    panel = load_panel(debug_panel, cfg.data.horizons)
    fold = pick(walk_forward(panel.dates, cfg), cfg.split.fold)
    data = prepare(cfg, panel, fold)
    relabelled, raw = data.panel.targets, panel.targets
    for split in (fold.val, fold.test):
        assert torch.equal(relabelled[split.start : split.stop].isnan(), raw[split.start : split.stop].isnan())
        np.testing.assert_array_equal(relabelled[split.start : split.stop], raw[split.start : split.stop])
    train = relabelled[fold.train.start : fold.train.stop]
    assert not np.allclose(train, raw[fold.train.start : fold.train.stop], equal_nan=True)
    assert train[torch.isfinite(train)].abs().max() > 1.0  # rank sums, not returns


def test_rank_sum_needs_the_one_day_horizon() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["loss.target=rank_sum", "data.horizons=[5, 20]", "split.purge_days=20"])
    assert any("loss.target = 'rank_sum'" in p and "must include 1" in p for p in info.value.problems)
