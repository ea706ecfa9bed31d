"""Day batches: one trading day's cross-section per batch, with that day's stock graph.

The predecessor batched 2-3 stocks over consecutive days, which made its stock graph meaningless and its
"cross-sectional" losses a mix of dates. Here a batch *is* a day: every stock with a full lookback window
and at least one label that day (shuffled within the day for training), so graph attention, rank losses
and the degeneracy guard all see a true cross-section. A day with more stocks than
``data.max_stocks_per_batch`` is split into disjoint random chunks; days with fewer than
``data.min_stocks_per_day`` eligible stocks are dropped and counted.

Days are shuffled per epoch for training and served in calendar order for evaluation; under DDP each rank
gets a disjoint share of the days.

Forecasting (:mod:`atft.predict`) serves the stocks a forecaster has on the day: every stock with a full
lookback window, labelled or not -- the day to forecast is exactly the one whose labels do not exist yet. On
a past day where every such stock has a label, the two modes serve the same cross-section, the same chunks
and so the same forecasts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from atft.config import Config
from atft.data.graph import StockGraph
from atft.data.panel import DensePanel


@dataclass(frozen=True)
class DayItem:
    """Which part of which day a batch holds: chunk ``chunk`` of ``n_chunks`` of day ``day``."""

    day: int
    chunk: int
    n_chunks: int
    seed: int | None  # None: stocks in code order (evaluation); else the within-day shuffle seed


@dataclass
class DayBatch:
    """One day's cross-section (n stocks, lookback T, F features, M market inputs, H horizons).

    Missing values arrive as 0 with a False mask, never as a silent 0 alone.
    """

    day: torch.Tensor  # () int64, index into the panel calendar
    stocks: torch.Tensor  # (n,) int64 global stock indices
    sector: torch.Tensor  # (n,) int64 sector codes (DensePanel.sector_id)
    x: torch.Tensor  # (n, T, F) float32
    x_mask: torch.Tensor  # (n, T, F) bool, True = observed
    market: torch.Tensor  # (T, M) float32
    market_mask: torch.Tensor  # (T, M) bool
    y: torch.Tensor  # (n, H) float32 forward returns
    y_mask: torch.Tensor  # (n, H) bool, True = label present
    edge_index: torch.Tensor  # (2, E) int64, positions in 0..n-1
    edge_attr: torch.Tensor  # (E, 3) float32 [rho, same_sector, same_market]
    oracle: torch.Tensor | None  # (n, H) float32 true expected returns (synthetic) or None

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> DayBatch:
        mapped = {f.name: None if (v := getattr(self, f.name)) is None else fn(v) for f in fields(self)}
        return DayBatch(**mapped)  # type: ignore[arg-type]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> DayBatch:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> DayBatch:
        """Called by DataLoader(pin_memory=True) so host-to-GPU copies can overlap compute."""
        return self._map(lambda t: t.pin_memory())


def full_windows(panel: DensePanel, lookback: int) -> torch.Tensor:
    """[D, N] bool: present on every day of the lookback window ending that day."""
    present = panel.present.to(torch.int32)
    run = present.cumsum(0)  # (D, N) days present so far
    window = run.clone()
    window[lookback:] -= run[:-lookback]
    full = window == lookback
    full[: lookback - 1] = False
    return full


def eligible_stocks(panel: DensePanel, lookback: int, labelled: bool = True) -> torch.Tensor:
    """[D, N] bool: a full lookback window ending that day and, when ``labelled``, a label that day."""
    full = full_windows(panel, lookback)
    return full & torch.isfinite(panel.targets).any(-1) if labelled else full


class DayDataset(Dataset[DayBatch]):
    """Serves :class:`DayItem` s as :class:`DayBatch` es from one shared :class:`DensePanel`.

    ``forecast``: serve every stock with a full lookback window, labelled or not (``y_mask`` False where
    there is no label); training and evaluation serve labelled stocks only.
    """

    def __init__(self, panel: DensePanel, graph: StockGraph, cfg: Config, forecast: bool = False) -> None:
        self.panel = panel
        self.graph = graph
        self.lookback = cfg.data.lookback
        self.eligible = eligible_stocks(panel, self.lookback, labelled=not forecast)
        self.cap = cfg.data.max_stocks_per_batch

    def stocks_of(self, item: DayItem) -> torch.Tensor:
        stocks = self.eligible[item.day].nonzero().flatten()
        if item.seed is not None:
            order = torch.randperm(len(stocks), generator=torch.Generator().manual_seed(item.seed))
            stocks = stocks[order]
        return torch.tensor_split(stocks, item.n_chunks)[item.chunk]

    def __getitem__(self, item: DayItem) -> DayBatch:
        p, t, d = self.panel, self.lookback, item.day
        stocks = self.stocks_of(item)
        window = p.features[d - t + 1 : d + 1]  # (T, N, F) view, no copy
        x = window.index_select(1, stocks).transpose(0, 1).contiguous()  # (n, T, F)
        market = p.market[d - t + 1 : d + 1]  # (T, M)
        y = p.targets[d].index_select(0, stocks)  # (n, H)
        edge_index, edge_attr = self.graph.subgraph(d, stocks)
        x_mask, market_mask, y_mask = torch.isfinite(x), torch.isfinite(market), torch.isfinite(y)
        return DayBatch(
            day=torch.tensor(d),
            stocks=stocks,
            sector=p.sector_id.index_select(0, stocks),
            x=torch.where(x_mask, x, 0.0),
            x_mask=x_mask,
            market=torch.where(market_mask, market, 0.0),
            market_mask=market_mask,
            y=torch.where(y_mask, y, 0.0),
            y_mask=y_mask,
            edge_index=edge_index,
            edge_attr=edge_attr,
            oracle=None if p.oracle is None else p.oracle[d].index_select(0, stocks),
        )


class DaySampler(Sampler[DayItem]):
    """Yields the :class:`DayItem` s of one epoch over ``days``.

    Args:
        counts: eligible stocks per day of the whole calendar ([D] tensor).
        days: the calendar indices to serve (a split segment).
        min_stocks: days with fewer eligible stocks are dropped (``dropped_days`` counts them).
        cap: a day with more stocks is split into ``ceil(n / cap)`` chunks.
        shuffle: shuffle days and the stocks within each day, reseeded by ``set_epoch``.
        rank, world_size: DDP share; ranks get disjoint days. With ``drop_last`` every rank gets the
            same number of items (so collective ops stay in step); without it every day is served once.
    """

    def __init__(
        self,
        counts: torch.Tensor,
        days: Sequence[int],
        min_stocks: int,
        cap: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        kept = [d for d in days if int(counts[d]) >= min_stocks]
        self.dropped_days = len(days) - len(kept)
        self.items = [(d, c, n) for d in kept for n in [math.ceil(int(counts[d]) / cap)] for c in range(n)]
        self.shuffle, self.seed, self.epoch, self.start = shuffle, seed, 0, 0
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Serve ``epoch``'s order from its ``start``-th item on, counted over all ranks (a resumed run
        skips what it trained on, whatever its number of ranks was)."""
        self.epoch, self.start = epoch, start

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(len(self.items)))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(len(self.items), generator=generator).tolist()

    def __iter__(self) -> Iterator[DayItem]:
        order = self._order()[self.start :]
        if self.drop_last:
            order = order[: len(order) - len(order) % self.world_size]
        for i in order[self.rank :: self.world_size]:
            day, chunk, n_chunks = self.items[i]
            seed = self.seed * 1_000_003 + self.epoch * 10_007 + day if self.shuffle else None
            yield DayItem(day, chunk, n_chunks, seed)

    def __len__(self) -> int:
        n = len(self.items)
        if self.drop_last:
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))


def day_loader(dataset: DayDataset, sampler: DaySampler, num_workers: int, pin_memory: bool = False) -> DataLoader:
    """A DataLoader of whole-day batches; workers are spawned and map the shared panel, never copy it."""
    if num_workers:
        dataset.panel.share_memory_()
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=sampler,
        num_workers=num_workers,
        multiprocessing_context="spawn" if num_workers else None,
        persistent_workers=num_workers > 0,
        pin_memory=pin_memory,
        # its own generator: starting an epoch must not draw from the global RNG that dropout uses,
        # or a resumed run (RNG restored from a checkpoint) would see different dropout masks
        generator=torch.Generator().manual_seed(sampler.seed),
    )
