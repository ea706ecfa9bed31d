"""A tiny real training run: every file of the run directory, every record kind, the report's objectives."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from atft.config import load_config
from atft.errors import OutputExistsError
from atft.telemetry.events import read_events
from atft.train.job import run_training
from factories import run_records

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(debug_panel: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    sets = ["train.epochs=2", "train.log_every=10", "train.tensorboard=true"]
    cfg = load_config(ROOT / "configs" / "debug.yaml", sets)
    out = tmp_path_factory.mktemp("runs") / "debug"
    result, report = run_training(cfg, out, debug_panel, progress=False)
    assert result.best_epoch in (0, 1)
    return out, report


def test_run_directory_holds_every_file(run: tuple[Path, dict]) -> None:
    out, _ = run
    for name in (
        "config.yaml",
        "events.jsonl",
        "predictions.parquet",
        "model.safetensors",
        "report.json",
        "report.md",
    ):
        assert (out / name).stat().st_size > 0, name
    assert list(out.glob("*.png"))


def test_metrics_records_cover_the_run(run: tuple[Path, dict]) -> None:
    out, _ = run
    records = run_records(out)
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "preflight" and kinds.count("val") == 2 and kinds.count("epoch") == 2
    assert kinds[-2:] == ["selection", "cost"]
    train = [r for r in records if r["kind"] == "train"]
    assert train and all(
        {"loss", "pinball", "rank", "sharpe", "dispersion", "listwise", "lr", "grad_norm"} <= set(r) for r in train
    )
    preflight = records[0]
    assert all(v > 0 for k, v in preflight.items() if k.startswith("grad_norm/"))
    assert {"grad_norm/graph_block", "grad_norm/head_20d"} <= set(preflight)


def test_a_healthy_run_raises_no_critical_health_event_and_passes_its_epoch_signal_verdicts(
    run: tuple[Path, dict],
) -> None:
    out, report = run
    records = run_records(out)
    critical = [r for r in records if r["kind"] == "health" and r["severity"] == "critical"]
    assert critical == []
    z = load_config(out / "config.yaml").health.signal.z
    for epoch in (r for r in records if r["kind"] == "epoch"):  # each epoch judged, every horizon above the bar
        assert all(epoch[f"epoch_train_rank_ic_t_{h}d"] >= z for h in (1, 5, 10, 20)), epoch
    assert {o["name"]: o["passed"] for o in report["objectives"]}["learning_signal"]


def test_event_stream_mirrors_the_metrics_and_brackets_the_run(run: tuple[Path, dict]) -> None:
    out, _ = run
    events = read_events(out / "events.jsonl")
    lifecycle = [(e.name, e.epoch) for e in events if e.kind == "lifecycle"]
    assert lifecycle == [("run_start", 0), ("epoch_end", 0), ("epoch_end", 1), ("run_end", 1)]
    assert events[-1].message == "status=ok" and {e.run_id for e in events} == {"debug"}
    vals = [e for e in events if e.name == "val/rank_ic" and e.horizon == 5]
    records = [r for r in run_records(out) if r["kind"] == "val"]
    assert [e.value for e in vals] == pytest.approx([r["rank_ic_5d"] for r in records], nan_ok=True)
    grads = {e.component for e in events if e.name == "grad/grad_norm"}
    assert {"temporal_encoder", "graph_block", "head_20d"} <= grads


def test_tensorboard_scalars_are_written_when_enabled(run: tuple[Path, dict]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _ = run
    scalars = EventAccumulator(str(out / "tensorboard")).Reload().Tags()["scalars"]
    assert {"train/loss", "val/rank_ic_5d", "grad/grad_norm/temporal_encoder"} <= set(scalars)


def test_predictions_hold_model_baselines_and_oracle(run: tuple[Path, dict]) -> None:
    out, _ = run
    table = pq.read_table(out / "predictions.parquet")
    assert set(table.column("split").unique().to_pylist()) == {"val", "test"}
    for column in ("model_5d", "model_q05_5d", "model_q95_5d", "momentum_5d", "reversal_5d", "ridge_5d", "oracle_5d"):
        assert column in table.column_names, column


def test_report_was_measured_in_this_run(run: tuple[Path, dict]) -> None:
    out, report = run
    assert json.loads((out / "report.json").read_text())["objectives"] == json.loads(json.dumps(report["objectives"]))
    names = {o["name"] for o in report["objectives"]}
    assert {"no_nan", "all_components_received_gradient", "rank_ic_positive", "dispersion_ratio"} <= names
    passed = {o["name"]: o["passed"] for o in report["objectives"]}
    assert passed["no_nan"] and passed["all_components_received_gradient"]


def test_an_existing_run_directory_is_refused(run: tuple[Path, dict], debug_panel: Path) -> None:
    out, _ = run
    before = (out / "report.json").read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        run_training(load_config(ROOT / "configs" / "debug.yaml"), out, debug_panel, progress=False)
    assert (out / "report.json").read_bytes() == before


def test_bf16_autocast_runs_on_cpu(debug_panel: Path, tmp_path: Path) -> None:
    from atft.data.panel import load_panel
    from atft.data.splits import pick, walk_forward
    from atft.runs.directory import RunDir
    from atft.telemetry.sinks import Sinks
    from atft.train.distributed import World
    from atft.train.job import train
    from atft.train.setup import prepare

    cfg = load_config(
        ROOT / "configs" / "debug.yaml", ["train.precision=bf16", "train.epochs=1", "data.max_stocks_per_batch=64"]
    )
    days = load_panel(debug_panel, cfg.data.horizons)
    data = prepare(cfg, days, pick(walk_forward(days.dates, cfg), cfg.split.fold))
    result = train(cfg, data, RunDir(tmp_path / "bf16", cfg), Sinks(), None, World(), show_progress=False)
    assert torch.isfinite(torch.tensor(result.test["rank_ic_5d"]))


def test_select_epoch_last_keeps_the_final_epoch_and_says_so(debug_panel: Path, tmp_path: Path) -> None:
    """The kept epoch is the last one whatever val says, and the selection record names the rule and its value."""
    sets = ["train.epochs=3", "train.select_epoch=last", "train.lr=0.05"]  # a large step: the epochs differ
    out = tmp_path / "last"
    result, _ = run_training(load_config(ROOT / "configs" / "debug.yaml", sets), out, debug_panel, progress=False)
    records = run_records(out)
    selection = next(r for r in records if r["kind"] == "selection")
    last_val = [r for r in records if r["kind"] == "val"][-1]
    assert result.best_epoch == 2 and selection["best_epoch"] == 2 and selection["rule"] == "last"
    assert selection["value"] == pytest.approx(last_val["rank_ic_5d"], rel=1e-6)
