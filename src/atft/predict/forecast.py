"""Which dates to forecast, the forecasts themselves, and the table they are written as.

The forecast of a day is computed exactly as training's evaluation computes it: the same day batches
(:class:`~atft.data.batching.DayDataset`, chunks of ``data.max_stocks_per_batch`` in code order), the same
stock graph (trailing returns only, the run's ``graph`` settings), the model in eval mode under the run's
precision, and the same ``.float()`` of its outputs. The one difference is the cross-section: a forecast serves
every stock with a full lookback window, where evaluation serves only those with a label (see
:mod:`atft.data.batching`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from atft.config import Config
from atft.data.batching import DayDataset, DaySampler
from atft.data.panel import FEATURE_PREFIX, MARKET_PREFIX, RETURN_COLUMN, DensePanel
from atft.errors import AtftError, ConfigError, DataContractError
from atft.metrics.ranks import average_ranks
from atft.model import ATFT
from atft.train.runtime import autocast

LATEST = "latest"
ALL = "all"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CHUNK_DAYS = 64


@dataclass
class Forecast:
    """The model's forecasts for R (day, stock) rows, H horizons, Q quantile levels."""

    day: torch.Tensor  # (R,) calendar index
    stock: torch.Tensor  # (R,) stock index
    point: torch.Tensor  # (R, H) the median quantile
    quantiles: torch.Tensor  # (R, H, Q)


def select_days(spec: str, panel: DensePanel, counts: torch.Tensor, cfg: Config) -> list[int]:
    """The calendar indices ``spec`` names, each with enough stocks to forecast; ascending.

    Args:
        spec: ``latest`` (the newest date with at least ``data.min_stocks_per_day`` stocks that have a full
            lookback window), ``all`` (every such date) or comma-separated ``YYYY-MM-DD`` dates.
        counts: ``[D]`` stocks with a full lookback window per day.

    Raises:
        ConfigError: a date is not ``YYYY-MM-DD``. DataContractError: a date is not in the panel or lacks the
            stocks to forecast (every such date named).
    """
    minimum, lookback = cfg.data.min_stocks_per_day, cfg.data.lookback
    ready = (counts >= minimum).nonzero().flatten().tolist()
    if spec in (LATEST, ALL):
        if not ready:
            raise DataContractError(
                [
                    f"no date has data.min_stocks_per_day={minimum} stocks with a full {lookback}-day lookback "
                    f"window (most on one date: {int(counts.max()) if len(counts) else 0})"
                ],
                panel.source,
            )
        return ready[-1:] if spec == LATEST else ready
    texts = [t.strip() for t in spec.split(",") if t.strip()]
    bad = [t for t in texts if not _is_date(t)]
    if bad or not texts:
        given = bad[0] if bad else spec
        raise ConfigError([f"{given!r} is not a date (YYYY-MM-DD), {LATEST} or {ALL}"], source="--dates")
    index = {d: i for i, d in enumerate(panel.dates.astype("datetime64[D]").astype(str))}
    problems, days = [], []
    for text in dict.fromkeys(texts):
        day = index.get(text)
        if day is None:
            problems.append(_not_in_calendar(text, panel))
        elif int(counts[day]) < minimum:
            short = " (its window starts before the panel's first date)" if day < lookback - 1 else ""
            problems.append(
                f"date {text}: {int(counts[day])} stocks have a full {lookback}-day lookback window{short}; "
                f"the run needs data.min_stocks_per_day={minimum}"
            )
        else:
            days.append(day)
    if problems:
        raise DataContractError(problems, panel.source)
    return sorted(days)


def _is_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        np.datetime64(text, "D")
    except ValueError:
        return False
    return True


def _not_in_calendar(text: str, panel: DensePanel) -> str:
    dates = panel.dates.astype("datetime64[D]")
    before = dates[dates < np.datetime64(text)]
    nearest = f"; the nearest date before it is {before[-1]}" if len(before) else ""
    return f"date {text} is not in the panel (its {len(dates)} dates run {dates[0]} .. {dates[-1]}){nearest}"


def check_finite_inputs(panel: DensePanel, days: list[int], span: int) -> None:
    """Refuse an Inf in what the forecasts of ``days`` read (``span`` days back): NaN means missing, Inf is a bug.

    The model masks every non-finite input as missing, so an Inf would pass silently; training's data
    contract refuses it for the same reason.
    """
    lo, hi = max(0, days[0] - span + 1), days[-1] + 1
    named = [
        ([FEATURE_PREFIX + n for n in panel.feature_names], panel.features),
        ([MARKET_PREFIX + n for n in panel.market_feature_names], panel.market[:, None, :]),
        ([RETURN_COLUMN], panel.returns[:, :, None]),
    ]
    for start in range(lo, hi, _CHUNK_DAYS):
        stop = min(hi, start + _CHUNK_DAYS)
        for names, values in named:
            infinite = torch.isinf(values[start:stop])  # (d, N, C)
            if bool(infinite.any()):
                day, stock, column = (int(i) for i in infinite.nonzero()[0])
                code = panel.codes[stock] if values.shape[1] > 1 else "every stock"
                raise DataContractError(
                    [
                        f"column '{names[column]}': infinite value at ({panel.dates[start + day]}, {code}), in the "
                        f"inputs of the dates to forecast; NaN means missing, Inf is an error upstream"
                    ],
                    panel.source,
                )


@torch.no_grad()
def forecast(model: ATFT, dataset: DayDataset, sampler: DaySampler, device: torch.device, precision: str) -> Forecast:
    """The model's forecasts for the sampler's days, in eval mode: the forward pass of evaluation, without a loss."""
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("day", "stock", "point", "quantiles")}
    for item in sampler:
        batch = dataset[item].to(device)
        with autocast(device, precision):
            out = model(batch.x, batch.x_mask, batch.market, batch.market_mask, batch.edge_index, batch.edge_attr)
        parts["day"].append(batch.day.expand(len(batch.stocks)).cpu())
        parts["stock"].append(batch.stocks.cpu())
        parts["point"].append(out.point.float().cpu())
        parts["quantiles"].append(out.quantiles.float().cpu())
    return Forecast(**{k: torch.cat(v) for k, v in parts.items()})


def check_finite_outputs(fc: Forecast, panel: DensePanel) -> None:
    """Refuse to write a non-finite forecast: finite weights on finite inputs never give one."""
    broken = (~torch.isfinite(fc.quantiles)).flatten(1).any(1)  # (R,)
    if bool(broken.any()):
        row = int(broken.nonzero()[0])
        raise AtftError(
            f"{int(broken.sum())} non-finite forecast row(s), first ({panel.dates[int(fc.day[row])]}, "
            f"{panel.codes[int(fc.stock[row])]}); the weights are broken (the inputs were checked)"
        )


def cross_sectional_ranks(day: np.ndarray, point: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(rank, percentile) of each row's forecast among its day's rows, per horizon; ``day`` sorted.

    ``rank``: 1 + the number of the day's stocks with a strictly higher forecast (1 = highest; ties share the
    best rank). ``percentile``: ``(n - r) / (n - 1)`` with ``r`` the average rank from the top (ties share
    their mean), so 1.0 is the day's highest forecast and 0.0 its lowest.

    Shapes: day (R,); point (R, H). Returns (R, H) int64 and (R, H) float64.
    """
    rank, percentile = np.empty(point.shape, np.int64), np.empty(point.shape, np.float64)
    bounds = np.flatnonzero(np.diff(day)) + 1
    for start, stop in zip([0, *bounds], [*bounds, len(day)], strict=True):
        values = point[start:stop].double().T.contiguous()  # (H, n)
        n = values.shape[1]
        higher = n - torch.searchsorted(values.sort(dim=1).values, values, right=True)  # (H, n)
        average = average_ranks(-values.T, torch.ones(n, values.shape[0], dtype=torch.bool))  # (n, H), 1 = top
        rank[start:stop] = (higher.T + 1).numpy()
        percentile[start:stop] = ((n - average) / max(n - 1, 1)).numpy()
    return rank, percentile


def forecast_table(fc: Forecast, panel: DensePanel, levels: list[float]) -> pa.Table:
    """One row per (date, code), sorted so; per horizon the point, every quantile, the rank and percentile."""
    order = np.lexsort((fc.stock.numpy(), fc.day.numpy()))
    day, stock = fc.day.numpy()[order], fc.stock.numpy()[order]
    point, quantiles = fc.point[order], fc.quantiles[order]
    rank, percentile = cross_sectional_ranks(day, point)
    columns: dict[str, pa.Array] = {
        "date": pa.array(panel.dates[day].astype("datetime64[D]"), pa.date32()),
        "code": pa.array(panel.codes[stock].astype(str)),
    }
    for k, h in enumerate(panel.horizons):
        columns[f"model_{h}d"] = pa.array(point[:, k].numpy())
        for j, level in enumerate(levels):
            columns[f"model_q{round(level * 100):02d}_{h}d"] = pa.array(quantiles[:, k, j].numpy())
        columns[f"rank_{h}d"] = pa.array(rank[:, k])
        columns[f"pct_{h}d"] = pa.array(percentile[:, k])
    return pa.table(columns)
