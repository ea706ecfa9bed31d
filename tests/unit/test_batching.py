import pytest
import torch

from atft.config import load_config
from atft.data.batching import DayDataset, DayItem, DaySampler, day_loader, eligible_stocks
from atft.data.graph import StockGraph
from atft.data.panel import DensePanel, load_panel
from atft.runs.files import write_parquet
from factories import HORIZONS, make_panel_table

LOOKBACK = 5


def _cfg(*sets: str):  # type: ignore[no-untyped-def]
    base = [
        "data.horizons=[1, 5]",
        f"data.lookback={LOOKBACK}",
        "data.min_stocks_per_day=10",
        "graph.window=10",
        "graph.min_observations=8",
        "graph.min_abs_corr=0.0",
        "graph.top_k=3",
    ]
    return load_config(None, [*base, *sets])


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> DensePanel:
    path = tmp_path_factory.mktemp("p") / "panel.parquet"
    write_parquet(make_panel_table(n_days=40, n_stocks=30, drop=0.1), path)
    return load_panel(path, HORIZONS)


def _dataset(panel: DensePanel, *sets: str) -> DayDataset:
    cfg = _cfg(*sets)
    return DayDataset(panel, StockGraph(panel.returns, panel.sector_id, panel.market_id, cfg.graph), cfg)


def test_eligible_means_full_window_and_a_label(panel: DensePanel) -> None:
    eligible = eligible_stocks(panel, LOOKBACK)
    assert not eligible[: LOOKBACK - 1].any()
    for d in range(LOOKBACK - 1, panel.n_days):
        full = panel.present[d - LOOKBACK + 1 : d + 1].all(0)
        labelled = torch.isfinite(panel.targets[d]).any(-1)
        assert torch.equal(eligible[d], full & labelled)
    assert not eligible[-1].any()  # no label on the last day for any horizon (h=1 ends there)


def test_a_batch_is_one_days_cross_section_with_windows_from_the_panel(panel: DensePanel) -> None:
    ds = _dataset(panel)
    day = 20
    batch = ds[DayItem(day, 0, 1, seed=None)]
    stocks = ds.eligible[day].nonzero().flatten()
    assert torch.equal(batch.stocks, stocks)
    n = len(stocks)
    assert batch.x.shape == (n, LOOKBACK, 4) and batch.y.shape == (n, 2) and batch.market.shape == (LOOKBACK, 2)
    expected = panel.features[day - LOOKBACK + 1 : day + 1, stocks].transpose(0, 1)
    assert torch.equal(batch.x, expected)  # full windows: nothing missing
    assert batch.x_mask.all()
    y = panel.targets[day, stocks]
    assert torch.equal(batch.y_mask, torch.isfinite(y))
    assert torch.equal(batch.y[batch.y_mask], y[batch.y_mask]) and (batch.y[~batch.y_mask] == 0).all()
    assert batch.edge_index.max() < n and batch.edge_attr.shape == (batch.edge_index.shape[1], 3)
    assert torch.equal(batch.sector, panel.sector_id[stocks])  # what loss.target: sector groups by


def test_training_shuffles_within_the_day_and_chunks_are_disjoint(panel: DensePanel) -> None:
    ds = _dataset(panel, "data.max_stocks_per_batch=10")
    day = 25
    all_stocks = ds.eligible[day].nonzero().flatten()
    chunks = [ds[DayItem(day, c, 3, seed=11)].stocks for c in range(3)]
    joined = torch.cat(chunks)
    assert sorted(joined.tolist()) == all_stocks.tolist()  # disjoint and covering
    assert not torch.equal(joined, all_stocks)  # shuffled
    assert torch.equal(ds[DayItem(day, 1, 3, seed=11)].stocks, chunks[1])  # reproducible


def test_sampler_drops_thin_days_splits_big_ones_and_shuffles_by_epoch() -> None:
    counts = torch.tensor([0, 5, 12, 25, 9, 40])
    sampler = DaySampler(counts, range(6), min_stocks=10, cap=12, shuffle=True, seed=3)
    assert sampler.dropped_days == 3
    items = list(sampler)
    assert sorted((i.day, i.chunk, i.n_chunks) for i in items) == [
        (2, 0, 1),
        (3, 0, 3),
        (3, 1, 3),
        (3, 2, 3),
        (5, 0, 4),
        (5, 1, 4),
        (5, 2, 4),
        (5, 3, 4),
    ]
    assert len({i.seed for i in items if i.day == 5}) == 1  # chunks of a day share one shuffle
    sampler.set_epoch(1)
    assert [i.day for i in sampler] != [i.day for i in items]
    evaluation = DaySampler(counts, range(6), min_stocks=10, cap=100, shuffle=False)
    assert [(i.day, i.seed) for i in evaluation] == [(2, None), (3, None), (5, None)]


def test_ranks_get_disjoint_days_covering_the_epoch() -> None:
    counts = torch.full((50,), 30)
    shares = [list(DaySampler(counts, range(50), 10, 100, True, seed=1, rank=r, world_size=3)) for r in range(3)]
    days = [i.day for share in shares for i in share]
    assert sorted(days) == list(range(50))
    dropped = [
        DaySampler(counts, range(50), 10, 100, True, seed=1, rank=r, world_size=3, drop_last=True) for r in range(3)
    ]
    assert [len(s) for s in dropped] == [16, 16, 16] and [len(list(s)) for s in dropped] == [16, 16, 16]


@pytest.mark.slow
def test_spawned_workers_serve_the_same_batches(panel: DensePanel) -> None:
    ds = _dataset(panel)
    counts = ds.eligible.sum(1)
    sampler = DaySampler(counts, range(panel.n_days), 10, 4096, shuffle=True, seed=5)
    serial = [b.x for b in day_loader(ds, sampler, num_workers=0)]
    parallel = [b.x for b in day_loader(ds, sampler, num_workers=2)]
    assert len(serial) == len(parallel) > 10
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))
