"""One training job, as ``atft train`` runs it locally and the container runs it in a cluster.

Resolves the panel (``--data``, ``data.path`` or the embedded synthetic market, generated once and cached
by the hash of the settings that shape it), opens a fresh run directory, trains, and writes the report.

Rank 0 says what it is doing before it does it: a ``start`` banner (run directory, data, stocks x days,
parameters, device and precision, threads, resume state) before the pre-flight; then, on a terminal, a
progress bar, and anywhere else (a pod's log) a plain ``progress`` line per logging step
(:mod:`atft.train.progress`, :mod:`atft.telemetry.sinks`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import resource
import sys
import time
from pathlib import Path

import pyarrow as pa
import torch
import torch.distributed as dist
from safetensors.torch import save_file

from atft.baselines import BaselineParams, Baselines, TreeParams, fold_rows
from atft.config import Config
from atft.data import features, synth
from atft.data.contract import check_panel
from atft.data.panel import DensePanel, load_panel
from atft.data.sources import write_synthetic
from atft.data.splits import pick, walk_forward
from atft.errors import CheckpointError, TrainingFailed
from atft.health.monitors import Monitors
from atft.predict import write_run_inputs
from atft.report.build import write_report
from atft.runs.directory import RunDir, refuse_foreign, resolve_out
from atft.runs.files import atomic_path, write_parquet
from atft.telemetry.events import EventWriter, TelemetrySink
from atft.telemetry.sinks import (
    ConsoleSink,
    HealthConsoleSink,
    MetricSink,
    Sinks,
    TensorBoardSink,
    is_terminal,
    write_line,
)
from atft.train.averaging import weight_average
from atft.train.checkpoint import Checkpoint, checkpoints_root, latest_valid, load_checkpoint
from atft.train.distributed import World, init_world, sum_count
from atft.train.evaluate import predict, prediction_table, score
from atft.train.loop import FitResult, fit
from atft.train.preemption import StopRequest
from atft.train.progress import ProgressLines, train_plan
from atft.train.resume import check_config, events_bytes, restore
from atft.train.runtime import bf16_warning, resolve_device, resolve_precision
from atft.train.setup import Training, TrainingData, build_model, build_optimizer, build_training, prepare

CONSOLE_KEYS = (
    r"epoch|loss|train_loss|wall_s|stock_days_per_s|rank_ic_\d+d|best_epoch|value|peak_rss_bytes|device|precision"
)


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


def panel_path(cfg: Config, data: str | Path | None) -> Path:
    """The panel a run reads: ``--data``, else ``data.path``, else the (cached) synthetic market."""
    source = data if data is not None else cfg.data.path
    return Path(source) if source is not None else synthetic_panel_path(cfg)


def load_checked_panel(cfg: Config, path: Path) -> DensePanel:
    """Load the panel and check its data contract, before anything is written."""
    panel = load_panel(path, cfg.data.horizons)
    check_panel(panel, cfg).raise_if_failed(panel.source)
    return panel


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

    ``out`` is resolved once (a symlink is followed) and must be absent, empty, or a run directory atft
    created (:mod:`atft.runs.directory`): any other directory is refused before anything is read or written.

    Under torchrun every rank calls this; rank 0 opens the run directory and writes everything, the other
    ranks train their share and return an empty report.

    ``progress``: the rich progress bar, shown only where stderr is a terminal; elsewhere rank 0 prints a
    plain progress line at every logging step whatever ``progress`` says (they are log records).
    """
    out = resolve_out(out)
    refuse_foreign(out)
    if os.environ.get("RANK", "0") == "0":  # the rank init_world reads; the panel may take a while to load
        source = data if data is not None else cfg.data.path
        write_line(f"start run_dir={out} data={source if source is not None else 'synthetic market'}")
    panel = load_checked_panel(cfg, panel_path(cfg, data))
    fold = pick(walk_forward(panel.dates, cfg, calendar=str(panel.source)), cfg.split.fold)  # or a named error
    if cfg.train.tensorboard:
        TensorBoardSink.require(out / "tensorboard")  # before the run directory exists
    world = init_world(resolve_device(cfg.train).type)
    try:
        checkpoint = find_checkpoint(cfg, panel, out, resume)
        if not world.is_main:
            dist.barrier()  # rank 0 has opened the run directory
            share = prepare(cfg, panel, fold, world.rank, world.size)
            return train(cfg, share, RunDir.reopen(out), Sinks(), checkpoint, world, show_progress=False), {}
        run, resumed_from = open_run(cfg, out, overwrite, resume, checkpoint)
        write_run_inputs(run.path, panel, cfg)  # what `atft predict` checks a forecast panel against
        if world.distributed:
            dist.barrier()
        start_banner(cfg, panel, run, checkpoint, world)
        training_data = prepare(cfg, panel, fold, world.rank, world.size)
        return _train_and_report(cfg, training_data, run, progress, checkpoint, resumed_from, world)
    finally:
        if world.distributed:
            dist.destroy_process_group()


def open_run(
    cfg: Config, out: Path, overwrite: bool, resume: str | None, checkpoint: Checkpoint | None
) -> tuple[RunDir, int | None]:
    """A fresh run directory, or the one a checkpoint continues and the length its event stream had then."""
    if checkpoint is None:
        return RunDir(out, cfg, overwrite or (resume == "auto" and _unfinished(out))), None
    check_config(cfg, checkpoint)
    if not (out / "events.jsonl").exists():  # a checkpoint named by path, continued in a new run directory
        return RunDir(out, cfg, overwrite), None
    return RunDir.reopen(out), events_bytes(checkpoint, out / "events.jsonl")


def _train_and_report(
    cfg: Config,
    data: TrainingData,
    run: RunDir,
    progress: bool,
    checkpoint: Checkpoint | None,
    resumed_from: int | None,
    world: World,
) -> tuple[FitResult, dict]:
    """Rank 0: the sinks around ``fit``, the event stream's start and end, and the report."""
    run_id = os.environ.get("ATFT_RUN_ID", run.path.name)
    step = checkpoint.step if checkpoint else 0
    terminal = is_terminal(sys.stderr)  # a terminal gets rich styling and the bar; a log gets plain lines
    stream = run.file("events.jsonl")
    with EventWriter(stream, run_id=run_id, rank=world.rank, step=step, resumed_from=resumed_from) as events:
        sinks: list[MetricSink] = [
            TelemetrySink(events),
            ConsoleSink(("epoch", "val", "selection", "cost", "resume"), keys=CONSOLE_KEYS, plain=not terminal),
            HealthConsoleSink(plain=not terminal),
        ]
        if not terminal:
            sinks.append(ProgressLines(train_plan(cfg, data, world.size), start_step=step))
        if cfg.train.tensorboard:
            sinks.append(TensorBoardSink(run.file("tensorboard")))
        sink = Sinks(*sinks)
        if checkpoint is not None:
            skipped = {f"skipped_checkpoint_{i}": why for i, why in enumerate(checkpoint.skipped, 1)}
            sink.log_dict("resume", step, {"checkpoint": str(checkpoint.path), "skipped": len(skipped), **skipped})
        try:
            try:
                result = train(cfg, data, run, sink, checkpoint, world, show_progress=progress and terminal)
            finally:
                sink.close()
        except TrainingFailed:
            write_report(run.path)  # a stopped run still gets its report: the objectives say what failed
            raise  # the event writer records run_end with the failure
    return result, write_report(run.path)


def train(
    cfg: Config,
    data: TrainingData,
    run: RunDir,
    sink: MetricSink,
    checkpoint: Checkpoint | None,
    world: World,
    show_progress: bool,
) -> FitResult:
    """Build the run's training (or take it back from ``checkpoint``), train to the last epoch, finish.

    SIGTERM ends it after the current step with a checkpoint and :class:`~atft.errors.Preempted`.
    """
    with StopRequest() as stop:
        training = build_training(cfg, data, run, sink, checkpoint, world)
        fit(training, stop, show_progress)
        return finish(training)


def start_banner(cfg: Config, panel: DensePanel, run: RunDir, checkpoint: Checkpoint | None, world: World) -> None:
    """Rank 0, before the pre-flight: one ``start`` line on stderr saying what this run trains on, where, in
    which precision (as resolved: ``auto`` named beside it), on how many threads, and from which checkpoint.

    bf16 on a device that emulates it gets one health-style warning line here, naming the CPU and the flags
    it lacks (:func:`atft.train.runtime.bf16_warning`): the run is several times slower than it need be.
    """
    if not world.is_main:
        return
    device = resolve_device(cfg.train)
    precision = resolve_precision(device, cfg.train.precision)
    params = sum(p.numel() for p in build_model(cfg, panel, torch.ones(len(panel.horizons))).parameters())
    if checkpoint is None:
        state = "fresh"
    else:
        skipped = f" ({len(checkpoint.skipped)} newer skipped)" if checkpoint.skipped else ""
        state = f"step {checkpoint.step} of {checkpoint.path}{skipped}"
    write_line(
        f"start run_dir={run.path} data={panel.source} "
        f"panel={len(panel.codes)} stocks x {len(panel.dates)} days x {len(panel.feature_names)} features "
        f"params={params:,} device={device} precision={precision} (train.precision={cfg.train.precision}) "
        f"threads={torch.get_num_threads()} ranks={world.size} resume={state}"
    )
    warning = bf16_warning(device, precision)
    if warning is not None:
        HealthConsoleSink(plain=not is_terminal(sys.stderr)).announce("warning", "emulated_bf16", warning)


def find_checkpoint(cfg: Config, panel: DensePanel, out: Path, resume: str | None) -> Checkpoint | None:
    """The checkpoint ``resume`` names (see :func:`run_training`), verified against the model and the loop.

    Each candidate is restored into a throwaway model, optimizer, schedule and monitors first, so a
    ``state.pt`` whose checksums hold but whose layout this atft cannot read is refused by name (or, with
    ``auto``, skipped for an older one) before a run directory is opened or a metrics file cut.
    """
    if resume is None:
        return None
    model = build_model(cfg, panel, torch.ones(len(panel.horizons)))
    shapes = {k: v.shape for k, v in model.state_dict().items()}

    def restorable(checkpoint: Checkpoint) -> None:
        optimizer, scheduler = build_optimizer(cfg, model, steps_per_epoch=1)
        average = weight_average(model, cfg.train.weight_average)
        monitors = Monitors(cfg, model, Sinks(), panel.feature_names)
        rng = torch.get_rng_state()
        try:
            restore(checkpoint, model, optimizer, scheduler, monitors, average, World())
            events_bytes(checkpoint)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
            raise CheckpointError(
                f"{checkpoint.path / 'state.pt'}: a training state this atft cannot restore "
                f"({type(exc).__name__}: {_cut(str(exc))})"
            ) from exc
        finally:
            torch.set_rng_state(rng)

    if resume == "auto":
        return latest_valid(checkpoints_root(out), shapes, restorable)
    checkpoint = load_checkpoint(Path(resume), shapes)
    restorable(checkpoint)
    return checkpoint


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _unfinished(out: Path) -> bool:
    """A run directory killed before its first checkpoint (no report yet): ``--resume auto`` starts it over.

    Only a directory atft marked as a run is ever emptied (:func:`atft.runs.directory.claim`).
    """
    return out.is_dir() and not (out / "report.json").exists()


def finish(t: Training) -> FitResult:
    """After the last epoch: rank 0 loads the best epoch's weights, logs the selection, writes
    ``model.safetensors`` and ``predictions.parquet`` (the model beside every baseline, val and test), and
    logs the run's cost; the other ranks only add their stock-days to the count."""
    cfg, loop = t.cfg, t.loop
    stock_days = sum_count(loop.stock_days, t.world, t.device)
    if not t.world.is_main:
        return FitResult(loop.best_epoch, loop.best_value, {}, {})
    t.model.load_state_dict(t.best_state)
    selection = {
        "best_epoch": loop.best_epoch,
        "rule": cfg.train.select_epoch,
        "metric": cfg.train.select_metric,
        "value": loop.best_value,
        "horizon": cfg.train.select_horizon,
    }
    t.sink.log_dict("selection", loop.step, selection)
    with atomic_path(t.run.file("model.safetensors")) as tmp:
        save_file({k: v.contiguous().cpu() for k, v in t.model.state_dict().items()}, str(tmp))
    results = final_predictions(t)
    t.sink.log_dict("cost", loop.step, _cost(t.started, stock_days, t.device) | t.monitors.summary())
    return FitResult(loop.best_epoch, loop.best_value, results["val"], results["test"])


def final_predictions(t: Training) -> dict[str, dict[str, float]]:
    """Best-epoch forecasts of val and test beside the baselines, written to predictions.parquet; their scores."""
    cfg, data, panel = t.cfg, t.data, t.data.panel
    train = fold_rows(data.dataset.eligible, data.fold.train, cfg.data.lookback)
    val = fold_rows(data.dataset.eligible, data.fold.val, cfg.data.lookback)
    baselines = Baselines.fit(panel, *train, *val, baseline_params(cfg))
    tables, results = [], {}
    for split in ("val", "test"):
        pred = predict(t.model, data.dataset, data.samplers[split], t.loss_fn, t.device, cfg.train.precision)
        others = baselines.forecast(pred.day, pred.stock)
        tables.append(
            prediction_table(split, pred, panel.dates, panel.codes, panel.horizons, cfg.model.quantiles, others)
        )
        results[split] = score(pred, pred.point, panel.horizons, cfg.train.cost_bps)
    write_parquet(pa.concat_tables(tables), t.run.file("predictions.parquet"))
    return results


def baseline_params(cfg: Config) -> BaselineParams:
    """The ``baselines:`` config as the fitting code takes it (the lightgbm baseline seeded by ``seed``)."""
    trees = cfg.baselines.lightgbm
    lightgbm = TreeParams(**trees.model_dump(exclude={"enabled"}), seed=cfg.seed) if trees.enabled else None
    return BaselineParams(ridge_lambda=cfg.baselines.ridge_lambda, lightgbm=lightgbm)


def _cost(started: float, stock_days: int, device: torch.device) -> dict[str, float | str]:
    wall = time.perf_counter() - started
    cost: dict[str, float | str] = {
        "wall_s": wall,
        "stock_days_per_s": stock_days / wall,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "device": str(device),
    }
    if device.type == "cuda":
        cost["gpu_peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
        cost["gpu_utilization"] = torch.cuda.utilization(device)
    return cost
