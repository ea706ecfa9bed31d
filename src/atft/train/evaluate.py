"""Forecast a split day by day, score it with the one set of metrics, and write the predictions file."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from atft.data.batching import DayDataset, DaySampler
from atft.metrics.finance import evaluate
from atft.model import ATFT
from atft.train.losses import DayLoss
from atft.train.runtime import autocast


@dataclass
class Predictions:
    """Forecasts of one split, one row per (day, stock) served (R rows, H horizons, Q quantiles)."""

    day: torch.Tensor  # (R,) calendar index
    stock: torch.Tensor  # (R,) stock index
    point: torch.Tensor  # (R, H)
    quantiles: torch.Tensor  # (R, H, Q)
    target: torch.Tensor  # (R, H), NaN = no label
    loss: float  # mean day loss over the split


@torch.no_grad()
def predict(
    model: ATFT, dataset: DayDataset, sampler: DaySampler, loss_fn: DayLoss, device: torch.device, precision: str
) -> Predictions:
    """Run the model over the sampler's days in calendar order (eval mode, no gradient)."""
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("day", "stock", "point", "quantiles", "target")}
    losses = []
    for item in sampler:
        batch = dataset[item].to(device)
        with autocast(device, precision):
            out = model(batch.x, batch.x_mask, batch.market, batch.market_mask, batch.edge_index, batch.edge_attr)
        loss, _ = loss_fn(out.quantiles, out.point, batch.y, batch.y_mask, model.target_scale, batch.sector)
        losses.append(loss)
        parts["day"].append(batch.day.expand(len(batch.stocks)).cpu())
        parts["stock"].append(batch.stocks.cpu())
        parts["point"].append(out.point.float().cpu())
        parts["quantiles"].append(out.quantiles.float().cpu())
        parts["target"].append(torch.where(batch.y_mask, batch.y, float("nan")).cpu())
    cat = {k: torch.cat(v) for k, v in parts.items()}
    return Predictions(**cat, loss=float(torch.stack(losses).mean()))  # one sync per split


def score(pred: Predictions, values: torch.Tensor, horizons: list[int], cost_bps: float) -> dict[str, float]:
    """Flat ``{metric_<h>d: value}`` of forecasts ``values`` (R, H) against the split's targets."""
    out: dict[str, float] = {}
    day, stock = pred.day.numpy(), pred.stock.numpy()
    for k, h in enumerate(horizons):
        metrics = evaluate(day, values[:, k].double().numpy(), pred.target[:, k].double().numpy(), h, stock, cost_bps)
        out.update({f"{name}_{h}d": float(value) for name, value in metrics.items()})
    return out


def prediction_table(
    split: str,
    pred: Predictions,
    dates: np.ndarray,
    codes: np.ndarray,
    horizons: list[int],
    levels: list[float],
    others: dict[str, torch.Tensor],
) -> pa.Table:
    """The rows of ``predictions.parquet`` for one split (docs/run-format.md)."""
    day, stock = pred.day.numpy(), pred.stock.numpy()
    columns: dict[str, pa.Array] = {
        "split": pa.array([split] * len(day)),
        "date": pa.array(dates[day].astype("datetime64[D]"), pa.date32()),
        "code": pa.array(codes[stock].astype(str)),
    }
    for k, h in enumerate(horizons):
        columns[f"target_{h}d"] = pa.array(pred.target[:, k].numpy())
        columns[f"model_{h}d"] = pa.array(pred.point[:, k].numpy())
        for j, level in enumerate(levels):
            columns[f"model_q{round(level * 100):02d}_{h}d"] = pa.array(pred.quantiles[:, k, j].numpy())
        for source, values in others.items():
            columns[f"{source}_{h}d"] = pa.array(values[:, k].float().numpy())
    return pa.table(columns)
