"""pytorch-forecasting's TemporalFusionTransformer on the benchmark's stocks and features (optional import)."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd
import torch
from pytorch_forecasting import TemporalFusionTransformer, TimeSeriesDataSet
from pytorch_forecasting.metrics import QuantileLoss

from atft.data.panel import DensePanel

LOOKBACK = 20
BATCH = 256


def _frame(panel: DensePanel, days: int = 80) -> tuple[pd.DataFrame, list[str]]:
    """The last labelled ``days`` of the panel, long by (stock, day), missing inputs as 0 like atft's masks."""
    last = int(torch.isfinite(panel.targets[..., 0]).any(1).nonzero().max())
    rows = panel.present[last - days + 1 : last + 1].nonzero()  # (R, 2)
    day, stock = rows[:, 0] + last - days + 1, rows[:, 1]
    x = panel.features[day, stock].numpy()
    names = [f"f{j}" for j in range(x.shape[1])]
    frame = pd.DataFrame(np.where(np.isfinite(x), x, 0.0), columns=names)
    frame["code"] = panel.codes[stock.numpy()].astype(str)
    frame["time_idx"] = day.numpy()
    y = panel.targets[day, stock, 0].numpy()
    frame["target"] = np.where(np.isfinite(y), y, 0.0)
    return frame, names


def tft_rate(panel: DensePanel, hidden: int, repeats: int) -> float:
    """Samples (stock-days) per second of forward + backward + AdamW step, batches of 256 from its own loader."""
    frame, names = _frame(panel)
    data = TimeSeriesDataSet(
        frame,
        time_idx="time_idx",
        target="target",
        group_ids=["code"],
        max_encoder_length=LOOKBACK,
        max_prediction_length=1,
        time_varying_unknown_reals=[*names, "target"],
        allow_missing_timesteps=True,
    )
    model = TemporalFusionTransformer.from_dataset(
        data, hidden_size=hidden, attention_head_size=4 if hidden < 128 else 8, dropout=0.1, loss=QuantileLoss()
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = iter(data.to_dataloader(train=True, batch_size=BATCH, num_workers=0))
    times = []
    for i in range(repeats + 2):
        x, (y, _) = next(batches)
        start = time.perf_counter()
        out = model(x)
        loss = model.loss(out["prediction"], y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return BATCH / statistics.median(times)
