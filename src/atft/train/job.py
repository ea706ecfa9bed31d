"""One training job, as ``atft train`` runs it locally and the container runs it in a cluster.

Resolves the panel (``--data``, ``data.path`` or the embedded synthetic market, generated once and cached
by the hash of the settings that shape it), opens a fresh run directory, trains, and writes the report.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from atft.config import Config
from atft.data.panel import DensePanel, load_panel
from atft.data.sources import write_synthetic
from atft.errors import TrainingFailed
from atft.metrics.sinks import ConsoleSink, HealthConsoleSink, JsonlSink, MetricSink, Sinks, TensorBoardSink
from atft.report import write_report
from atft.rundir import RunDir
from atft.telemetry import EventWriter, TelemetrySink
from atft.train.loop import FitResult, fit

CONSOLE_KEYS = r"epoch|loss|train_loss|wall_s|stock_days_per_s|rank_ic_\d+d|best_epoch|value|peak_rss_bytes|device"


def cache_dir() -> Path:
    """Where generated panels are cached: ``$ATFT_CACHE_DIR`` or ``~/.cache/atft``."""
    return Path(os.environ.get("ATFT_CACHE_DIR", Path.home() / ".cache" / "atft"))


def synthetic_panel_path(cfg: Config) -> Path:
    """The cached synthetic panel for ``cfg`` (written on first use; deterministic, so safe to reuse)."""
    shape = {"synth": cfg.synth.model_dump(), "features": cfg.features.model_dump(), "horizons": cfg.data.horizons}
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"synthetic-{digest}.parquet"
    if not path.exists():
        write_synthetic(cfg, path)
    return path


def resolve_panel(cfg: Config, data: str | Path | None) -> DensePanel:
    source = data if data is not None else cfg.data.path
    path = Path(source) if source is not None else synthetic_panel_path(cfg)
    return load_panel(path, cfg.data.horizons)


def run_training(
    cfg: Config, out: str | Path, data: str | Path | None = None, overwrite: bool = False, progress: bool = True
) -> tuple[FitResult, dict]:
    """Train and report; returns the fit result and the report dict."""
    panel = resolve_panel(cfg, data)
    if cfg.train.tensorboard:
        TensorBoardSink.require(Path(out) / "tensorboard")  # before the run directory exists
    run = RunDir(out, cfg, overwrite)
    run_id = os.environ.get("ATFT_RUN_ID", run.path.name)
    with EventWriter(run.file("events.jsonl"), run_id=run_id, rank=int(os.environ.get("RANK", "0"))) as events:
        sinks: list[MetricSink] = [
            JsonlSink(run.file("metrics.jsonl")),
            TelemetrySink(events),
            ConsoleSink(("epoch", "val", "selection", "cost"), keys=CONSOLE_KEYS),
            HealthConsoleSink(),
        ]
        if cfg.train.tensorboard:
            sinks.append(TensorBoardSink(run.file("tensorboard")))
        sink = Sinks(*sinks)
        try:
            result = fit(cfg, panel, run, sink, show_progress=progress)
        except TrainingFailed:
            sink.close()
            write_report(run.path)  # a stopped run still gets its report: the objectives say what failed
            raise  # the event writer records run_end with the failure
        sink.close()
    return result, write_report(run.path)
