"""Builders of tiny, valid feature panels in the documented format (docs/panel-format.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from atft.config import dump_config, load_config
from atft.health.events import HealthEvent
from atft.telemetry.events import EventWriter, TelemetrySink, read_stream, records

HORIZONS = [1, 5]


def make_panel_table(
    n_days: int = 40, n_stocks: int = 30, n_features: int = 4, seed: int = 0, drop: float = 0.05
) -> pa.Table:
    """A valid panel: random features with cross-sectional spread, weakly informative targets, a few missing rows."""
    rng = np.random.default_rng(seed)
    dates = np.arange(np.datetime64("2021-01-04"), np.datetime64("2021-01-04") + n_days)
    codes = np.array([f"C{i:03d}" for i in range(n_stocks)])
    day, stock = np.meshgrid(np.arange(n_days), np.arange(n_stocks), indexing="ij")
    keep = rng.random(day.shape) >= drop
    keep[:, :3] = True  # a few stocks always trade
    day, stock = day[keep], stock[keep]
    n = day.size
    columns: dict[str, object] = {
        "date": pa.array(dates[day].astype("datetime64[D]"), pa.date32()),
        "code": pa.array(codes[stock]),
        "sector": pa.array([f"S{i % 3}" for i in stock]),
        "market": pa.array(["PRIME" if i % 2 else "GROWTH" for i in stock]),
    }
    feats = rng.standard_normal((n, n_features)).astype(np.float32)
    for j in range(n_features):
        columns[f"feat_f{j}"] = pa.array(feats[:, j])
    mkt = rng.standard_normal((n_days, 2)).astype(np.float32)
    columns["mkt_ret"] = pa.array(mkt[day, 0])
    columns["mkt_vol"] = pa.array(mkt[day, 1])
    for h in HORIZONS:
        y = (0.05 * feats[:, 0] + rng.standard_normal(n)).astype(np.float32) * 0.01 * np.sqrt(h)
        y[day >= n_days - h] = np.nan
        columns[f"target_{h}d"] = pa.array(y, from_pandas=False)
        columns[f"oracle_{h}d"] = pa.array((0.0005 * feats[:, 0]).astype(np.float32))
    columns["return_1d"] = pa.array((rng.standard_normal(n) * 0.01).astype(np.float32))
    return pa.table(columns).replace_schema_metadata({"atft.schema_version": "1"})


# --- run directories (docs/run-format.md) ------------------------------------------------------------

COMPONENTS = ("encoder", "graph", "heads")
SPLIT_DAYS = {"val": 20, "test": 60}
BASELINE_NOISE = {"momentum": 3.0, "reversal": 4.0, "ridge": 2.0, "lightgbm": 2.0}
"""Noise added to the planted signal: every baseline is informative, and weaker than the good model (0.5)."""


def _predictions(rng: np.random.Generator, n_stocks: int, model_noise: float | None, model_scale: float) -> pa.Table:
    """Rows of both splits; target_h = 0.01·sqrt(h)·(0.3·s + e), oracle = its expectation, model = s + noise."""
    tables, first = [], np.datetime64("2022-01-03")
    for split, n_days in SPLIT_DAYS.items():
        dates = np.busday_offset(first, np.arange(n_days), roll="forward")
        first = np.busday_offset(dates[-1], 10)
        day, stock = (a.ravel() for a in np.meshgrid(np.arange(n_days), np.arange(n_stocks), indexing="ij"))
        signal = rng.standard_normal(day.size)
        columns: dict[str, Any] = {
            "split": pa.array([split] * day.size),
            "date": pa.array(dates[day], pa.date32()),
            "code": pa.array([f"S{i:03d}" for i in stock]),
        }
        for h in HORIZONS:
            scale = 0.01 * math.sqrt(h)
            target = scale * (0.3 * signal + rng.standard_normal(day.size))
            target[day >= n_days - h] = np.nan  # no label at the end of the split
            noise = rng.standard_normal(day.size)
            model = scale * model_scale * (0.3 * noise if model_noise is None else 0.3 * (signal + model_noise * noise))
            columns[f"target_{h}d"] = pa.array(target)
            columns[f"model_{h}d"] = pa.array(model.astype(np.float32))
            for level, shift in (("q10", -1.0), ("q50", 0.0), ("q90", 1.0)):
                columns[f"model_{level}_{h}d"] = pa.array((model + shift * scale).astype(np.float32))
            for source, sigma in BASELINE_NOISE.items():
                values = scale * (signal + sigma * rng.standard_normal(day.size))
                values[day < 2] = np.nan  # a trailing window not yet filled
                columns[f"{source}_{h}d"] = pa.array(values.astype(np.float32))
            columns[f"oracle_{h}d"] = pa.array((scale * 0.3 * signal).astype(np.float32))
        tables.append(pa.table(columns))
    return pa.concat_tables(tables)


STEPS_PER_EPOCH = 10
GRAD_EVERY = 5  # grad records at step 1 and every 5 steps; train and signal records every 5 steps
SIGNAL_SETS = ["health.signal.warmup_steps=10", "health.signal.window=10"]
"""The learning-signal monitor's first check falls inside the fake run (step 10)."""


def _grad_record(step: int) -> dict[str, Any]:
    """Healthy gradient flow: every component's norm well inside the monitor's bounds, changing with the step."""
    record: dict[str, Any] = {"kind": "grad", "step": step, "epoch": (step - 1) // STEPS_PER_EPOCH}
    for i, c in enumerate(COMPONENTS):
        norm = (i + 1) * 0.1 + 1.0 / step
        record |= {f"grad_norm/{c}": norm, f"grad_max/{c}": norm / 2, f"grad_none/{c}": 0, f"grad_small/{c}": 0}
    return record | {"act_grad/projected": 0.01 * step, "act_grad/normalized": 0.02 + 0.001 * step}


def _counters(step: int, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The degeneracy counters (one check every 5 steps) and events/<name> counts of the health events so far."""
    seen = [e for e in events if e["step"] <= step]
    out: dict[str, Any] = {}
    for h in HORIZONS:
        resets = sum(e["name"] == "degeneracy_reset" and e.get("horizon") == h for e in seen)
        failed = sum(e["name"] == "degeneracy_check_failed" and e.get("horizon") == h for e in seen)
        out |= {f"degeneracy_checks_{h}d": step // GRAD_EVERY, f"degeneracy_failed_{h}d": failed}
        out |= {f"degeneracy_resets_{h}d": resets, f"dispersion_ema_{h}d": 0.5}
    for name in sorted({e["name"] for e in seen}):
        out[f"events/{name}"] = sum(e["name"] == name for e in seen)
    return out


def _signal_record(step: int, events: list[dict[str, Any]]) -> dict[str, Any]:
    """A learning model: positive rolling training RankIC, its t undefined (NaN) at the first record only."""
    record: dict[str, Any] = {"kind": "signal", "step": step, "epoch": (step - 1) // STEPS_PER_EPOCH}
    for h in HORIZONS:
        t = math.nan if step == GRAD_EVERY else 2.5 + 0.1 * step / h
        record |= {f"train_rank_ic_{h}d": 0.05 / h, f"train_rank_ic_t_{h}d": t}
    return record | _counters(step, events)


def _epoch_signal(step: int, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The epoch-end learning-signal verdict: passing (t 4 + h / 10) at every horizon, except where an injected
    ``no_learning_signal`` or ``learning_signal_unconfirmed`` up to ``step`` was not followed by a
    ``learning_signal_confirmed`` (t 0.5)."""
    failing: set[Any] = set()
    for e in events:
        if e["step"] <= step and e["name"] in ("no_learning_signal", "learning_signal_unconfirmed"):
            failing.add(e.get("horizon"))
        elif e["step"] <= step and e["name"] == "learning_signal_confirmed":
            failing.discard(e.get("horizon"))
    out: dict[str, Any] = {}
    for h in HORIZONS:
        out |= {
            f"epoch_train_rank_ic_{h}d": 0.04 / h,
            f"epoch_train_rank_ic_t_{h}d": 0.5 if h in failing else 4 + h / 10,
        }
    return out


def _health_record(event: dict[str, Any]) -> dict[str, Any]:
    defaults = {"value": 0.0, "severity": "critical", "message": f"injected {event['name']}"}
    return {"kind": "health", **defaults, **event}


def _records(
    grad_norms: dict[str, float] | None,
    *,
    nan_loss: bool,
    val_records: bool,
    grad_records: bool,
    signal_records: bool,
    events: list[dict[str, Any]],
    stopped_at: int | None,
) -> list[dict[str, Any]]:
    """The records of a 3-epoch run of 10 steps each (docs/run-format.md), in the order the loop logs."""
    records: list[dict[str, Any]] = []
    if grad_norms is not None:
        records.append({"kind": "preflight", "step": 0, **{f"grad_norm/{c}": v for c, v in grad_norms.items()}})
        records[-1]["loss"] = 2.0
    last = 3 * STEPS_PER_EPOCH if stopped_at is None else stopped_at
    for step in range(1, last + 1):
        epoch = (step - 1) // STEPS_PER_EPOCH
        if grad_records and (step == 1 or step % GRAD_EVERY == 0):
            records.append(_grad_record(step))
        records += [_health_record(e) for e in events if e["step"] == step]
        if step % GRAD_EVERY == 0:
            k = step - STEPS_PER_EPOCH * epoch
            loss = math.nan if nan_loss and step == 20 else 1.0 - 0.1 * epoch - 0.01 * k
            terms = {
                "pinball": loss / 2,
                "rank": 0.1,
                "sharpe": -0.2,
                "dispersion": 0.0,
                "listwise": 0.0,
                "lr": 1e-3,
                "grad_norm": 0.5,
            }
            records.append({"kind": "train", "step": step, "epoch": epoch, "loss": loss, **terms})
            if signal_records:
                records.append(_signal_record(step, events))
        if step % STEPS_PER_EPOCH or step == stopped_at:  # a stopped run never ends the epoch it stopped in
            continue
        if val_records:
            val: dict[str, Any] = {"kind": "val", "step": step, "epoch": epoch, "loss": 0.9 - 0.05 * epoch}
            for h in HORIZONS:
                val |= {f"ic_{h}d": 0.02 * epoch, f"rank_ic_{h}d": 0.03 * epoch, f"sharpe_{h}d": 0.5 * epoch}
                val[f"dispersion_ratio_{h}d"] = 0.1 + 0.05 * epoch
            records.append(val)
        records.append({"kind": "epoch", "step": step, "epoch": epoch, "wall_s": 3.0 + epoch})
        records[-1] |= {"train_loss": 0.95 - 0.1 * epoch, "stock_days_per_s": 1000.0, "days": 10}
        if signal_records:
            records[-1] |= _epoch_signal(step, events)
        records[-1] |= _counters(step, events)
    if stopped_at is None:
        records.append({"kind": "selection", "step": last, "best_epoch": 2, "metric": "rank_ic", "horizon": 5})
        records[-1]["value"] = 0.06
        records.append({"kind": "cost", "step": last, "wall_s": 12.5, "stock_days_per_s": 900.0, "device": "cpu"})
        records[-1] |= {"peak_rss_bytes": 2**30} | {k: v for k, v in _counters(last, events).items() if "/" in k}
    return [{**r, "time": 1.7e9 + i} for i, r in enumerate(records)]


def write_events(path: Path, records: list[dict[str, Any]]) -> None:
    """``records`` (``{"kind", "step", ...}`` as the loop logs them) as the run's ``events.jsonl``, written the way
    a run writes it: through :class:`~atft.telemetry.events.TelemetrySink`."""
    with EventWriter(path, run_id=path.parent.name) as writer:
        sink = TelemetrySink(writer)
        for record in records:
            kind, step = record["kind"], record["step"]
            values = {k: v for k, v in record.items() if k not in ("kind", "step", "time")}
            if kind == "health":
                values.pop("epoch", None)
                sink.health(HealthEvent(step=step, **values))
            else:
                sink.log_dict(kind, step, values)


def make_run(
    path: Path,
    *,
    model_noise: float | None = 0.5,
    model_scale: float = 1.0,
    grad_norms: dict[str, float] | None = None,
    preflight: bool = True,
    nan_loss: bool = False,
    val_records: bool = True,
    grad_records: bool = True,
    signal_records: bool = True,
    health_events: Sequence[dict[str, Any]] = (),
    stopped_at: int | None = None,
    predictions: bool = True,
    drop_columns: tuple[str, ...] = (),
    cost_bps: float = 25.0,
    sets: Sequence[str] = (),
    seed: int = 0,
) -> Path:
    """A valid run directory (docs/run-format.md) of a healthy run; ``model_noise=None``: the model is pure noise.

    ``health_events``: health records to inject, each at least ``{"name", "step"}`` (steps 1..30; value,
    severity and message get defaults); the epoch/cost ``events/<name>`` and ``degeneracy_resets_<h>d`` counters
    follow them. ``stopped_at=S``: the run stopped at step S (no records after it, no selection or cost);
    ``predictions=False``: no predictions.parquet (the run never reached evaluation); ``sets``: more config
    overrides of the run's config.yaml.
    """
    path.mkdir(parents=True)
    base = ["data.horizons=[1,5]", "report.horizon=5", "train.select_horizon=5", f"train.cost_bps={cost_bps}"]
    (path / "config.yaml").write_text(dump_config(load_config(None, [*base, *SIGNAL_SETS, *sets])))
    norms = (grad_norms or dict.fromkeys(COMPONENTS, 0.3)) if preflight else None
    records = _records(
        norms,
        nan_loss=nan_loss,
        val_records=val_records,
        grad_records=grad_records,
        signal_records=signal_records,
        events=list(health_events),
        stopped_at=stopped_at,
    )
    write_events(path / "events.jsonl", records)
    if predictions:
        table = _predictions(np.random.default_rng(seed), 40, model_noise, model_scale)
        pq.write_table(table.drop_columns(list(drop_columns)), path / "predictions.parquet")
    return path


def run_records(run: Path) -> list[dict[str, Any]]:
    """The records of a run directory's ``events.jsonl`` as the report reads them (replayed steps left out)."""
    events, _ = read_stream(run / "events.jsonl")
    return records(events)
