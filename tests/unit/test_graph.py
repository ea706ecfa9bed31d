"""The per-date stock graph against an independent numpy reference, on tiny panels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.utils import subgraph as pyg_subgraph

from atft.config import GraphConfig
from atft.data.graph import StockGraph, correlation_factors, ewm_weights, top_k_neighbours

CFG = GraphConfig(
    window=20,
    halflife=8.0,
    shrinkage=0.1,
    min_abs_corr=0.25,
    top_k=3,
    min_observations=12,
    market_neutral=False,  # the reference correlates raw returns; market-neutral graphs are tested against it
    cache_size=64,
)
N_DAYS, N_STOCKS = 45, 16
SPARSE, EMPTY = 14, 15  # a stock with too few observations, a stock that never trades


def make_returns(seed: int = 0) -> np.ndarray:
    """Two-factor returns with ~10% missing cells, one sparse stock and one that never trades: [D, N]."""
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((N_DAYS, 2)) * 0.01
    loadings = rng.standard_normal((2, N_STOCKS))
    returns = factors @ loadings + rng.standard_normal((N_DAYS, N_STOCKS)) * 0.01
    returns[rng.random(returns.shape) < 0.1] = np.nan
    returns[rng.random(N_DAYS) < 0.7, SPARSE] = np.nan
    returns[:, EMPTY] = np.nan
    return returns.astype(np.float32)


def make_graph(returns: np.ndarray, cfg: GraphConfig = CFG) -> StockGraph:
    n = returns.shape[1]
    sector = torch.arange(n) % 3
    market = torch.arange(n) % 2
    return StockGraph(torch.from_numpy(returns), sector, market, cfg)


def reference_rho(returns: np.ndarray, day: int, cfg: GraphConfig) -> tuple[np.ndarray, np.ndarray]:
    """float64 reference: fill each stock's gaps with its weighted mean, then np.cov with aweights.

    Returns rho [N, N] (NaN off participants) and participating [N].
    """
    first = max(0, day - cfg.window + 1)
    x = returns[first : day + 1].astype(np.float64)  # [W', N], oldest first
    lags = day - np.arange(first, day + 1)
    weights = 0.5 ** (lags / cfg.halflife)
    observed = np.isfinite(x)
    participating = observed.sum(0) >= cfg.min_observations
    filled = x.copy()
    for i in range(x.shape[1]):
        if observed[:, i].any():
            filled[~observed[:, i], i] = np.average(x[observed[:, i], i], weights=weights[observed[:, i]])
    participating &= np.nan_to_num(filled.std(0)) > 0
    rho = np.full((x.shape[1], x.shape[1]), np.nan)
    idx = np.flatnonzero(participating)
    if idx.size:
        cov = np.atleast_2d(np.cov(filled[:, idx], rowvar=False, aweights=weights))
        std = np.sqrt(np.diag(cov))
        rho[np.ix_(idx, idx)] = (1 - cfg.shrinkage) * cov / np.outer(std, std)
    return rho, participating


def reference_edges(rho: np.ndarray, participating: np.ndarray, cfg: GraphConfig) -> set[tuple[int, int]]:
    """Union of each participant's top-k list by |rho| among qualifying neighbours, both directions."""
    edges = set()
    for i in np.flatnonzero(participating):
        candidates = [j for j in np.flatnonzero(participating) if j != i and abs(rho[i, j]) >= cfg.min_abs_corr]
        candidates.sort(key=lambda j: -abs(rho[i, j]))
        edges |= {(i, j) for j in candidates[: cfg.top_k]} | {(j, i) for j in candidates[: cfg.top_k]}
    return edges


def assert_well_separated(rho: np.ndarray, participating: np.ndarray, cfg: GraphConfig, margin: float = 1e-4) -> None:
    """Precondition: no |rho| sits within ``margin`` of the threshold or of a top-k boundary tie.

    float32 rho carries errors of ~1e-7 that depend on how the product was taken, so two computations may
    disagree on an edge only where this fails; where it holds, their edge sets must be identical.
    """
    magnitudes = np.abs(rho[np.ix_(participating, participating)])
    np.fill_diagonal(magnitudes, np.nan)  # a stock is not its own neighbour
    off_diagonal = np.isfinite(magnitudes)
    assert np.all(np.abs(magnitudes[off_diagonal] - cfg.min_abs_corr) > margin)
    for row in magnitudes:
        ranked = np.sort(row[row >= cfg.min_abs_corr])[::-1]  # NaN compares False: the diagonal drops out
        if ranked.size > cfg.top_k:
            assert ranked[cfg.top_k - 1] - ranked[cfg.top_k] > margin


def edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i, j in edge_index.T}


def test_ewm_weights_sum_to_one_and_halve_every_halflife() -> None:
    w = ewm_weights(20, 5.0)
    assert w.shape == (20,) and w.dtype == torch.float32
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
    assert float(w[5] / w[0]) == pytest.approx(0.5, rel=1e-6)


@pytest.mark.parametrize("sector_top_k", [0, 2])
def test_edges_are_sorted_symmetric_without_self_loops(sector_top_k: int) -> None:
    graph = make_graph(make_returns(), CFG.model_copy(update={"sector_top_k": sector_top_k}))
    for day in range(N_DAYS):
        edge_index, edge_attr = graph.edges(day)
        assert edge_index.dtype == torch.int64 and edge_attr.dtype == torch.float32
        assert edge_index.shape[0] == 2 and edge_attr.shape == (edge_index.shape[1], 3)
        src, dst = edge_index
        assert not torch.any(src == dst)
        keys = src * N_STOCKS + dst
        assert torch.all(keys[1:] > keys[:-1])  # sorted by source then target, no duplicates
        reverse = torch.searchsorted(keys, dst * N_STOCKS + src)  # position of (j, i) for each (i, j)
        assert torch.equal(keys[reverse], dst * N_STOCKS + src)
        assert torch.equal(edge_attr[reverse], edge_attr)  # same rho and flags both ways, bit for bit


@pytest.mark.parametrize("day", [12, 19, 30, 44])  # 12 and 19: windows truncated by the panel start
def test_graph_is_the_union_of_per_node_top_k_lists(day: int) -> None:
    returns = make_returns()
    rho, participating = reference_rho(returns, day, CFG)
    assert_well_separated(rho, participating, CFG)
    edge_index, edge_attr = make_graph(returns).edges(day)
    assert edge_set(edge_index) == reference_edges(rho, participating, CFG)
    assert torch.all(edge_attr[:, 0].abs() >= CFG.min_abs_corr)
    out_degree = torch.bincount(edge_index[0], minlength=N_STOCKS).numpy()
    for i in np.flatnonzero(participating):
        others = participating.copy()
        others[i] = False
        qualifying = np.sum((np.abs(rho[i]) >= CFG.min_abs_corr) & others)
        assert out_degree[i] >= min(CFG.top_k, qualifying)


def reference_sector_edges(rho: np.ndarray, participating: np.ndarray, k: int) -> set[tuple[int, int]]:
    """Union of each participant's ``k`` peers of its own sector (``make_graph``: i % 3) by |rho|, both ways."""
    edges = set()
    for i in np.flatnonzero(participating):
        peers = [j for j in np.flatnonzero(participating) if j != i and j % 3 == i % 3]
        peers.sort(key=lambda j: -abs(rho[i, j]))
        edges |= {(i, j) for j in peers[:k]} | {(j, i) for j in peers[:k]}
    return edges


@pytest.mark.parametrize("day", [30, 44])
def test_the_sector_graph_adds_each_stocks_most_correlated_sector_peers_however_weak(day: int) -> None:
    """``sector_top_k`` joins the correlation graph with each stock's top peers of its own sector by |rho|,
    below ``min_abs_corr`` too; a sector peer that is also a correlation neighbour is one edge, with its rho."""
    returns = make_returns()
    cfg = CFG.model_copy(update={"sector_top_k": 2})
    rho, participating = reference_rho(returns, day, cfg)
    assert_well_separated(rho, participating, cfg)
    for i in np.flatnonzero(participating):  # no tie at a sector peer list's boundary either
        peers = np.sort([abs(rho[i, j]) for j in np.flatnonzero(participating) if j != i and j % 3 == i % 3])[::-1]
        assert peers.size <= 2 or peers[1] - peers[2] > 1e-4
    edge_index, edge_attr = make_graph(returns, cfg).edges(day)
    sector_edges = reference_sector_edges(rho, participating, 2)
    assert edge_set(edge_index) == reference_edges(rho, participating, cfg) | sector_edges
    weak = edge_attr[:, 0].abs() < cfg.min_abs_corr
    assert weak.any() and edge_attr[weak, 1].eq(1).all()  # the weak edges are the sector's, and only those
    assert {(int(i), int(j)) for i, j in edge_index.T[weak]} <= sector_edges
    expected = rho[edge_index[0].numpy(), edge_index[1].numpy()]
    np.testing.assert_allclose(edge_attr[:, 0].numpy(), expected, rtol=0, atol=1e-5)


def test_rho_matches_a_numpy_weighted_correlation() -> None:
    returns = make_returns()
    for day in (25, 44):
        rho, _ = reference_rho(returns, day, CFG)
        edge_index, edge_attr = make_graph(returns).edges(day)
        assert edge_index.shape[1] > 10
        expected = rho[edge_index[0].numpy(), edge_index[1].numpy()]
        np.testing.assert_allclose(edge_attr[:, 0].numpy(), expected, rtol=0, atol=1e-5)


def test_planted_blocks_are_recovered() -> None:
    rng = np.random.default_rng(3)
    n_days, block = 80, 6
    factors = rng.standard_normal((n_days, 2)) * 0.02
    returns = np.repeat(factors, block, axis=1) + rng.standard_normal((n_days, 2 * block)) * 0.005  # [D, 12]
    # two blocks: net of their mean they would mirror each other (rho = -1), so this test correlates raw returns
    cfg = GraphConfig(window=60, min_observations=40, top_k=10, min_abs_corr=0.5, market_neutral=False)
    edge_index, _ = make_graph(returns.astype(np.float32), cfg).edges(n_days - 1)
    within = {(i, j) for i in range(2 * block) for j in range(2 * block) if i != j and i // block == j // block}
    assert edge_set(edge_index) == within


def test_market_neutral_graph_is_the_raw_graph_of_returns_net_of_the_date_mean() -> None:
    returns = make_returns()
    net = returns - np.nanmean(returns, axis=1, keepdims=True)
    neutral = make_graph(returns, CFG.model_copy(update={"market_neutral": True}))
    for day in (25, 44):
        rho, _ = reference_rho(net, day, CFG)
        edge_index, edge_attr = neutral.edges(day)
        assert edge_index.shape[1] > 10
        expected = rho[edge_index[0].numpy(), edge_index[1].numpy()]
        np.testing.assert_allclose(edge_attr[:, 0].numpy(), expected, rtol=0, atol=1e-5)


def test_market_neutral_graph_finds_peers_the_market_mode_hides() -> None:
    """8 blocks of 6 under a market factor: raw, the market lifts every pair over min_abs_corr and fills the
    top-k lists with other blocks' stocks; net of the date's mean, only block peers clear it."""
    rng = np.random.default_rng(5)
    n_days, block, blocks = 130, 6, 8
    market = rng.standard_normal((n_days, 1)) * 0.012 * rng.uniform(0.7, 1.3, block * blocks)
    factors = np.repeat(rng.standard_normal((n_days, blocks)) * 0.01, block, axis=1)
    returns = (market + factors + rng.standard_normal((n_days, block * blocks)) * 0.014).astype(np.float32)
    cfg = GraphConfig(window=120, halflife=60.0, min_observations=80, top_k=10, min_abs_corr=0.3)

    def within_share(market_neutral: bool) -> float:
        graph = make_graph(returns, cfg.model_copy(update={"market_neutral": market_neutral}))
        edge_index, _ = graph.edges(n_days - 1)
        return float((edge_index[0] // block == edge_index[1] // block).float().mean())

    assert within_share(True) > 0.9 and within_share(False) < 0.5


def test_returns_after_the_date_do_not_change_its_graph() -> None:
    returns = make_returns()
    graph = make_graph(returns)
    rng = np.random.default_rng(1)
    for day in (15, 30, 43):
        changed = returns.copy()
        changed[day + 1 :] = rng.standard_normal(changed[day + 1 :].shape).astype(np.float32)
        changed[day + 1 :: 2, :5] = np.nan
        before, after = graph.edges(day), make_graph(changed).edges(day)
        assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])


@pytest.mark.parametrize("min_abs_corr", [CFG.min_abs_corr, 0.0])  # 0.0: even rho = 0 would qualify
def test_stocks_with_too_few_observations_or_constant_returns_get_no_edges(min_abs_corr: float) -> None:
    returns = make_returns()
    returns[:, 0] = 0.01  # constant: no correlation to speak of
    graph = make_graph(returns, CFG.model_copy(update={"min_abs_corr": min_abs_corr}))
    for day in range(N_DAYS):
        _, participating = reference_rho(returns, day, CFG)
        nodes = set(graph.edges(day)[0].flatten().tolist())
        assert {0, SPARSE, EMPTY}.isdisjoint(nodes)
        assert nodes <= set(np.flatnonzero(participating))
    assert len(graph.edges(N_DAYS - 1)[0].unique()) > 5


def test_sector_and_market_flags() -> None:
    graph = make_graph(make_returns())
    edge_index, edge_attr = graph.edges(40)
    src, dst = edge_index
    assert torch.equal(edge_attr[:, 1], (src % 3 == dst % 3).float())
    assert torch.equal(edge_attr[:, 2], (src % 2 == dst % 2).float())
    assert edge_attr[:, 1].any() and not edge_attr[:, 1].all()


def test_subgraph_relabels_to_positions_and_agrees_with_pyg() -> None:
    graph = make_graph(make_returns())
    stocks = torch.tensor([9, 2, 13, 0, 5, 7, 11, 3, 15])
    edge_index, edge_attr = graph.edges(40)
    local, local_attr = graph.subgraph(40, stocks)
    expected, expected_attr = pyg_subgraph(stocks, edge_index, edge_attr, relabel_nodes=True, num_nodes=N_STOCKS)
    order = torch.argsort(expected[0] * len(stocks) + expected[1])
    assert local.shape[1] > 0
    assert torch.equal(local, expected[:, order]) and torch.equal(local_attr, expected_attr[order])
    assert torch.equal(graph.subgraph(40, torch.arange(N_STOCKS))[0], edge_index)
    assert graph.subgraph(40, torch.tensor([], dtype=torch.long))[0].shape == (2, 0)


def test_precompute_gives_the_same_graphs_as_edges() -> None:
    """Batched products over chunks of dates give the same edges as one date at a time; rho to float32 error."""
    returns = make_returns()
    for day in range(CFG.min_observations, N_DAYS):  # edges compared exactly: none may sit on a boundary
        assert_well_separated(*reference_rho(returns, day, CFG), CFG, margin=1e-5)
    fresh = make_graph(returns)
    for max_bytes in (1, 1 << 28):  # one date per chunk, all dates in one chunk
        graph = make_graph(returns)
        graph.precompute(range(N_DAYS), max_bytes=max_bytes)
        assert graph.cached_days == tuple(range(N_DAYS))
        for day in range(N_DAYS):
            (a, a_attr), (b, b_attr) = graph.edges(day), fresh.edges(day)
            assert torch.equal(a, b)
            torch.testing.assert_close(a_attr, b_attr, rtol=0, atol=1e-6)


def test_row_blocks_do_not_change_the_neighbours() -> None:
    """Blocks of 3 rows give the neighbours of the whole product; |rho| and rho agree to 1e-6.

    Another block shape is another matrix product: BLAS may sum the 20 terms in another order, so rho may move
    by a few float32 ulps (6e-8 at |rho| <= 1), never by 1e-6. The neighbours are compared exactly, on the
    participants, whose float64 top-k+1 |rho| are at least 1e-5 apart (checked first); a non-participant's row is
    all exact ties (its z is zero, rho = 0 against every stock) and is dropped by the graph.
    """
    k = 3
    x = torch.from_numpy(make_returns()[10:30]).unsqueeze(0)  # [1, W, N]
    z, participating = correlation_factors(x, ewm_weights(20, 8.0).flip(0), 12, 0.1)
    rows = participating[0]  # [N]
    assert 10 <= int(rows.sum()) < N_STOCKS
    rho64 = (z[0].double().T @ z[0].double()).abs()  # [N, N]
    rho64.fill_diagonal_(-1.0)
    rho64[:, ~rows] = -1.0
    top = rho64[rows].sort(dim=1, descending=True).values[:, : k + 1]  # [P, k + 1]
    assert torch.all(top[:, :-1] - top[:, 1:] > 1e-5)  # precondition: no near-tie decides an order
    (whole,) = top_k_neighbours(z, participating, [(k, None)])
    (blocked,) = top_k_neighbours(z, participating, [(k, None)], block_bytes=3 * 8 * N_STOCKS)  # 3 rows a block
    assert torch.equal(blocked[0][:, rows], whole[0][:, rows])
    torch.testing.assert_close(blocked[1], whole[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(blocked[2], whole[2], rtol=0, atol=1e-6)
    assert torch.all(blocked[1][:, ~rows] <= 0)  # no neighbour for a non-participant


def test_a_group_selection_shares_the_product_and_leaves_the_other_selection_as_it_was() -> None:
    """The sector peers come from the same blocks as the correlation neighbours: each selection is what it is
    alone, the group one ranks only the stock's own group (by the float64 product), and masking it leaves the
    ungrouped selection's scores untouched, however the rows are blocked."""
    x = torch.from_numpy(make_returns()[10:30]).unsqueeze(0)  # [1, W, N]
    z, participating = correlation_factors(x, ewm_weights(20, 8.0).flip(0), 12, 0.1)
    rows, group = participating[0], torch.arange(N_STOCKS) % 3
    (alone,) = top_k_neighbours(z, participating, [(3, None)])
    (peers_alone,) = top_k_neighbours(z, participating, [(2, group)])
    both = top_k_neighbours(z, participating, [(3, None), (2, group)], block_bytes=4 * 12 * N_STOCKS)  # 4 rows
    for shared, single in ((both[0], alone), (both[1], peers_alone)):
        assert torch.equal(shared[0][:, rows], single[0][:, rows])
        torch.testing.assert_close(shared[1], single[1], rtol=0, atol=1e-6)
    neighbours, abs_rho = both[1][0][0], both[1][1][0]  # [N, 2]
    found = abs_rho >= 0
    assert found[rows].all() and torch.equal(group[neighbours][found], group[:, None].expand_as(neighbours)[found])
    rho64 = (z[0].double().T @ z[0].double()).abs()
    for i in rows.nonzero().flatten().tolist():  # the two most correlated participating peers of i's own group
        peers = [j for j in (rows & (group == group[i])).nonzero().flatten().tolist() if j != i]
        ranked = sorted(peers, key=lambda j: -float(rho64[i, j]))
        assert float(rho64[i, ranked[1]] - rho64[i, ranked[2]]) > 1e-5  # precondition: no tie at the boundary
        assert set(neighbours[i].tolist()) == set(ranked[:2])


def test_cache_keeps_the_most_recently_used_dates() -> None:
    graph = make_graph(make_returns(), CFG.model_copy(update={"cache_size": 2}))
    for day in (20, 21, 20, 22):
        graph.edges(day)
    assert graph.cached_days == (20, 22)
    graph.precompute([30, 31, 32, 33])
    assert graph.cached_days == (32, 33)
    uncached = make_graph(make_returns(), CFG.model_copy(update={"cache_size": 0}))
    uncached.edges(20)
    assert uncached.cached_days == ()


@pytest.mark.parametrize("n_stocks", [0, 1])
def test_empty_and_single_stock_universes_give_empty_graphs(n_stocks: int) -> None:
    graph = make_graph(np.full((30, n_stocks), 0.01, dtype=np.float32))
    graph.precompute(range(30))
    edge_index, edge_attr = graph.edges(29)
    assert edge_index.shape == (2, 0) and edge_index.dtype == torch.int64
    assert edge_attr.shape == (0, 3) and edge_attr.dtype == torch.float32
    assert graph.subgraph(29, torch.arange(n_stocks))[0].shape == (2, 0)


def test_invalid_arguments_are_rejected() -> None:
    graph = make_graph(make_returns())
    with pytest.raises(IndexError, match="outside the panel"):
        graph.edges(N_DAYS)
    with pytest.raises(ValueError, match="distinct"):
        graph.subgraph(10, torch.tensor([1, 1]))
    with pytest.raises(IndexError, match="stocks must lie"):
        graph.subgraph(10, torch.tensor([N_STOCKS]))
    with pytest.raises(ValueError, match="sector_id"):
        StockGraph(torch.zeros(5, 3), torch.zeros(2, dtype=torch.long), torch.zeros(3, dtype=torch.long), CFG)
