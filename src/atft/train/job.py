"""One training job, as ``atft train`` runs it locally and the container runs it in a cluster.

Resolves the panel (``--data``, ``data.path`` or the embedded synthetic market, generated once and cached
by the hash of the settings that shape it), opens a fresh run directory, trains, and writes the report.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from atft.config import Config
from atft.data import features, synth
from atft.data.contract import check_panel
from atft.data.panel import DensePanel, load_panel
from atft.data.sources import write_synthetic
from atft.data.splits import walk_forward
from atft.errors import TrainingFailed
from atft.metrics.sinks import ConsoleSink, HealthConsoleSink, JsonlSink, MetricSink, Sinks, TensorBoardSink
from atft.report import write_report
from atft.rundir import RunDir
from atft.telemetry import EventWriter, TelemetrySink
from atft.train.checkpoint import Checkpoint, checkpoints_root, latest_valid, load_checkpoint
from atft.train.distributed import World, init_world
from atft.train.loop import FitResult, build_model, fit
from atft.train.preemption import StopRequest
from atft.train.resume import check_config, cut_metrics
from atft.train.runtime import resolve_device

CONSOLE_KEYS = r"epoch|loss|train_loss|wall_s|stock_days_per_s|rank_ic_\d+d|best_epoch|value|peak_rss_bytes|device"


def cache_dir() -> Path:
    """Where generated panels are cached: ``$ATFT_CACHE_DIR`` or ``~/.cache/atft``."""
    return Path(os.environ.get("ATFT_CACHE_DIR", Path.home() / ".cache" / "atft"))


def synthetic_panel_path(cfg: Config) -> Path:
    """The cached synthetic panel for ``cfg`` (written on first use; deterministic, so safe to reuse).

    The key covers the settings that shape the panel and the source of the code that makes it, so a changed
    generator or feature builder never serves a panel an older version wrote.
    """
    code = {m.__name__: hashlib.sha256(Path(inspect.getfile(m)).read_bytes()).hexdigest() for m in (synth, features)}
    shape = {
        "synth": cfg.synth.model_dump(),
        "features": cfg.features.model_dump(),
        "horizons": cfg.data.horizons,
        "code": code,
    }
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
    cfg: Config,
    out: str | Path,
    data: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    resume: str | None = None,
) -> tuple[FitResult, dict]:
    """Check the panel, open the run directory, train, and report; returns the fit result and the report.

    ``resume``: None starts a fresh run (an existing non-empty ``out`` is refused unless ``overwrite``);
    ``"auto"`` continues from the newest checkpoint in ``out`` that verifies (naming any newer one it had to
    skip) and starts fresh when there is none -- the same command serves a pod's first start and every
    restart; any other value is the path of one checkpoint directory to continue from.

    Under torchrun every rank calls this; rank 0 opens the run directory and writes everything, the other
    ranks train their share and return an empty report.
    """
    panel = resolve_panel(cfg, data)
    check_panel(panel, cfg).raise_if_failed(panel.source)  # the data contract, before anything is written
    walk_forward(panel.n_days, cfg, calendar=str(panel.source))  # the calendar fits the splits and lookback
    if cfg.train.tensorboard:
        TensorBoardSink.require(Path(out) / "tensorboard")  # before the run directory exists
    world = init_world(resolve_device(cfg.train).type)
    try:
        checkpoint = find_checkpoint(cfg, panel, Path(out), resume)
        if not world.is_main:
            dist.barrier()  # rank 0 has opened the run directory
            with StopRequest() as stop:
                result = fit(cfg, panel, RunDir.reopen(out), Sinks(), False, checkpoint, stop, world)
            return result, {}
        run = open_run(cfg, Path(out), overwrite, resume, checkpoint)
        if world.distributed:
            dist.barrier()
        return _train_and_report(cfg, panel, run, progress, checkpoint, world)
    finally:
        if world.distributed:
            dist.destroy_process_group()


def open_run(cfg: Config, out: Path, overwrite: bool, resume: str | None, checkpoint: Checkpoint | None) -> RunDir:
    """A fresh run directory, or the one a checkpoint continues (its metrics cut back to the checkpoint)."""
    if checkpoint is None:
        return RunDir(out, cfg, overwrite or (resume == "auto" and _unfinished(out)))
    check_config(cfg, checkpoint)
    if not (out / "metrics.jsonl").exists():  # a checkpoint named by path, continued in a new run directory
        return RunDir(out, cfg, overwrite)
    run = RunDir.reopen(out)
    cut_metrics(checkpoint, run.file("metrics.jsonl"))
    return run


def _train_and_report(
    cfg: Config, panel: DensePanel, run: RunDir, progress: bool, checkpoint: Checkpoint | None, world: World
) -> tuple[FitResult, dict]:
    """Rank 0: the sinks around ``fit``, the event stream's start and end, and the report."""
    run_id = os.environ.get("ATFT_RUN_ID", run.path.name)
    step = checkpoint.step if checkpoint else 0
    with EventWriter(run.file("events.jsonl"), run_id=run_id, rank=world.rank, step=step) as events:
        sinks: list[MetricSink] = [
            JsonlSink(run.file("metrics.jsonl")),
            TelemetrySink(events),
            ConsoleSink(("epoch", "val", "selection", "cost", "resume"), keys=CONSOLE_KEYS),
            HealthConsoleSink(),
        ]
        if cfg.train.tensorboard:
            sinks.append(TensorBoardSink(run.file("tensorboard")))
        sink = Sinks(*sinks)
        if checkpoint is not None:
            sink.log_dict("resume", step, {"checkpoint": str(checkpoint.path), "skipped": len(checkpoint.skipped)})
            for reason in checkpoint.skipped:
                sink.log_dict("resume", step, {"skipped_checkpoint": reason})
        try:
            try:
                with StopRequest() as stop:
                    result = fit(cfg, panel, run, sink, progress, checkpoint, stop, world)
            finally:
                sink.close()
        except TrainingFailed:
            write_report(run.path)  # a stopped run still gets its report: the objectives say what failed
            raise  # the event writer records run_end with the failure
    return result, write_report(run.path)


def find_checkpoint(cfg: Config, panel: DensePanel, out: Path, resume: str | None) -> Checkpoint | None:
    """The checkpoint ``resume`` names (see :func:`run_training`), verified against the model's shapes."""
    if resume is None:
        return None
    shapes = {k: v.shape for k, v in build_model(cfg, panel, torch.ones(len(panel.horizons))).state_dict().items()}
    if resume == "auto":
        return latest_valid(checkpoints_root(out), shapes)
    return load_checkpoint(Path(resume), shapes)


def _unfinished(out: Path) -> bool:
    """A run directory killed before its first checkpoint (no report yet): ``--resume auto`` starts it over."""
    return out.is_dir() and not (out / "report.json").exists()
