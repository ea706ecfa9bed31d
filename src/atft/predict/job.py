"""``atft predict``: a trained run's forecasts for chosen dates of a panel, written as one Parquet file.

Order of work, so that bad input is refused before anything is computed and nothing is ever half written: the
output path, the run's files, the panel (or the prices it is built from, with the run's feature settings), its
columns against the run's, the dates, the inputs those dates read, the weights against the model; then the
forecasts, written atomically.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import pyarrow as pa
import torch

from atft.config import Config
from atft.data.batching import DayDataset, DaySampler
from atft.data.graph import StockGraph
from atft.data.panel import DensePanel, load_panel
from atft.data.sources import build_from_prices, refuse_existing
from atft.errors import ConfigError, DataContractError
from atft.predict.forecast import (
    LATEST,
    check_finite_inputs,
    check_finite_outputs,
    forecast,
    forecast_table,
    select_days,
)
from atft.predict.trained import TrainedRun, open_trained
from atft.runs.files import write_parquet
from atft.train.runtime import resolve_device
from atft.train.setup import build_model

Device = Literal["auto", "cpu", "cuda"]


@dataclass
class PredictResult:
    """What was forecast, with what, and where it was written."""

    out: Path
    table: pa.Table
    run: TrainedRun
    weights: Path
    device: str
    wall_s: float

    def summary(self) -> dict[str, object]:
        dates = self.table.column("date").unique().sort().to_pylist()
        return {
            "out": str(self.out),
            "weights": str(self.weights),
            "trained_through": self.run.inputs.last_date,
            "dates": len(dates),
            "first_date": str(dates[0]),
            "last_date": str(dates[-1]),
            "rows": self.table.num_rows,
            "stocks": len(self.table.column("code").unique()),
            "horizons": self.run.inputs.horizons,
            "device": self.device,
            "wall_s": round(self.wall_s, 3),
        }


def load_forecast_panel(cfg: Config, data: Path | None, prices: Path | None, trained_on: str) -> DensePanel:
    """The panel to forecast from: ``data`` as is, or ``prices`` built exactly as ``atft data build`` does
    with the run's feature settings and horizons (in a temporary file, removed after loading), or with
    neither the panel the run trained on (``trained_on``, from its inputs.json: the demo's synthetic market
    scores its own latest date) -- refused by name when that file is gone."""
    if data is not None and prices is not None:
        raise ConfigError(["give at most one of --data PANEL and --prices PRICES"], source="arguments")
    if data is None and prices is None:
        data = Path(trained_on)
        if not data.is_file():
            raise ConfigError(
                [f"the run trained on {data}, which is not there any more: give --data PANEL or --prices PRICES"],
                source="arguments",
            )
    if data is not None:
        return load_panel(data, cfg.data.horizons)
    assert prices is not None
    with tempfile.TemporaryDirectory(prefix="atft-predict-") as tmp:
        path = Path(tmp) / "panel.parquet"
        build_from_prices(cfg, prices, path)
        return replace(load_panel(path, cfg.data.horizons), source=str(prices))


def predict_run(
    run: str | Path,
    out: str | Path,
    data: str | Path | None = None,
    prices: str | Path | None = None,
    dates: str = LATEST,
    overwrite: bool = False,
    device: Device | None = None,
) -> PredictResult:
    """Forecast ``dates`` of a panel with the run ``run`` (a run directory or one of its checkpoints).

    Args:
        run: what ``atft train`` wrote (its selected ``model.safetensors``), or ``RUN_DIR/checkpoints/step-N``
            (see :mod:`atft.predict.trained` for which weights).
        out: the Parquet file to write (refused when it exists, unless ``overwrite``; never a directory).
        data / prices: at most one: a feature panel, or prices to build it from with the run's settings;
            neither: the panel the run trained on (its inputs.json).
        dates: ``latest``, ``all`` or comma-separated ``YYYY-MM-DD`` (:func:`~atft.predict.forecast.select_days`).
        device: where to compute; None = the run's ``train.device``.

    Raises:
        AtftError: exit 2 for every refusal (each names the file, column, date or tensor); nothing is written.
    """
    started = time.perf_counter()
    out = Path(out)
    refuse_existing(out, overwrite)
    trained = open_trained(run)
    cfg = trained.cfg
    panel = load_forecast_panel(
        cfg, None if data is None else Path(data), None if prices is None else Path(prices), trained.inputs.panel
    )
    if problems := trained.inputs.problems(panel):
        raise DataContractError(problems, panel.source)
    graph = StockGraph(panel.returns, panel.sector_id, panel.market_id, cfg.graph)
    dataset = DayDataset(panel, graph, cfg, forecast=True)
    counts = dataset.eligible.sum(1)
    days = select_days(dates, panel, counts, cfg)
    check_finite_inputs(panel, days, max(cfg.data.lookback, cfg.graph.window))
    model = build_model(cfg, panel, torch.ones(len(panel.horizons)))
    weights, source = trained.weights({k: v.shape for k, v in model.state_dict().items()})
    model.load_state_dict(weights)  # target_scale, a buffer, comes with the weights
    where = resolve_device(cfg.train if device is None else cfg.train.model_copy(update={"device": device}))
    sampler = DaySampler(counts, days, cfg.data.min_stocks_per_day, cfg.data.max_stocks_per_batch, shuffle=False)
    fc = forecast(model.to(where), dataset, sampler, where, cfg.train.precision)
    check_finite_outputs(fc, panel)
    table = forecast_table(fc, panel, cfg.model.quantiles)
    write_parquet(table, out)
    return PredictResult(out, table, trained, source, str(where), time.perf_counter() - started)
