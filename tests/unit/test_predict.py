"""``atft predict`` on a real tiny run: the forecasts training made, unlabelled dates, ranks, and every refusal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file, save_file

from atft.config import Config, load_config
from atft.data.batching import DayDataset, DayItem, eligible_stocks
from atft.data.graph import StockGraph
from atft.data.panel import DensePanel, load_panel
from atft.errors import CheckpointError, ConfigError, DataContractError, InputFileError, OutputExistsError
from atft.predict import INPUTS_FILE, RunInputs, read_run_inputs
from atft.predict.forecast import cross_sectional_ranks
from atft.predict.job import predict_run
from atft.runs.files import write_parquet
from atft.train.checkpoint import checkpoint_dirs
from atft.train.job import run_training

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "configs" / "debug.yaml"
HORIZONS = [1, 5, 10, 20]


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(DEBUG)


@pytest.fixture(scope="module")
def panel(debug_market: tuple[Path, Path]) -> DensePanel:
    return load_panel(debug_market[0], HORIZONS)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, cfg: Config, debug_market: tuple[Path, Path]) -> Path:
    """A finished debug run."""
    out = tmp_path_factory.mktemp("runs") / "debug"
    run_training(cfg, out, debug_market[0], progress=False)
    return out


def _table(path: Path) -> pa.Table:
    return pq.read_table(path)


def _model_columns(table: pa.Table) -> list[str]:
    return [c for c in table.column_names if c.startswith("model_")]


def test_training_records_its_inputs(run: Path, cfg: Config, panel: DensePanel) -> None:
    assert read_run_inputs(run) == RunInputs.of(panel, cfg)


def test_forecasts_of_val_and_test_dates_are_trainings_bit_for_bit(run: Path, debug_market: tuple[Path, Path]) -> None:
    """Same batches, same model call, same precision: the same float32 values, not merely close ones."""
    trained = _table(run / "predictions.parquet").sort_by([("date", "ascending"), ("code", "ascending")])
    dates = sorted({str(d) for d in trained.column("date").to_pylist()})
    result = predict_run(run, run.parent / "shared.parquet", data=debug_market[0], dates=",".join(dates))
    forecast = result.table
    # on these dates every stock with a full window has a label, so both serve the same cross-sections
    assert forecast.select(["date", "code"]).equals(trained.select(["date", "code"]))
    assert len(dates) >= 50
    for column in _model_columns(trained):
        assert np.array_equal(forecast.column(column).to_numpy(), trained.column(column).to_numpy()), column


def test_default_date_is_the_latest_and_needs_no_label(
    run: Path, debug_market: tuple[Path, Path], panel: DensePanel
) -> None:
    out = run.parent / "latest.parquet"
    result = predict_run(run, out, data=debug_market[0])
    last = panel.n_days - 1
    assert not torch.isfinite(panel.targets[last]).any()  # tomorrow's labels do not exist yet
    assert not eligible_stocks(panel, 10)[last].any()  # which is why training never serves this date
    assert result.summary()["last_date"] == str(panel.dates[last]) and result.summary()["dates"] == 1
    window = panel.present[last - 9 : last + 1].all(0)
    assert result.table.column("code").to_pylist() == panel.codes[window.numpy()].tolist()
    assert _table(out).equals(result.table)
    for h in HORIZONS:
        quantiles = np.stack(
            [result.table.column(f"model_q{q}_{h}d").to_numpy() for q in ("05", "25", "50", "75", "95")]
        )
        assert (np.diff(quantiles, axis=0) >= 0).all()
        assert np.array_equal(result.table.column(f"model_{h}d").to_numpy(), quantiles[2])


def test_forecast_mode_serves_unlabelled_stocks_and_training_mode_does_not(panel: DensePanel, cfg: Config) -> None:
    graph = StockGraph(panel.returns, panel.sector_id, panel.market_id, cfg.graph)
    training, forecasting = DayDataset(panel, graph, cfg), DayDataset(panel, graph, cfg, forecast=True)
    labelled = torch.isfinite(panel.targets).any(-1)
    assert torch.equal(training.eligible, forecasting.eligible & labelled)
    assert (forecasting.eligible & ~labelled).any()
    batch = forecasting[DayItem(panel.n_days - 1, 0, 1, seed=None)]
    assert len(batch.stocks) > 0 and not batch.y_mask.any() and (batch.y == 0).all()


def test_ranks_and_percentiles_per_date_with_ties() -> None:
    day = np.array([0, 0, 0, 0, 1, 1])
    point = torch.tensor([[3.0, 0.1], [1.0, 0.2], [3.0, 0.3], [2.0, 0.4], [5.0, 1.0], [6.0, 1.0]])
    rank, percentile = cross_sectional_ranks(day, point)
    assert rank[:, 0].tolist() == [1, 4, 1, 3, 2, 1] and rank[:, 1].tolist() == [4, 3, 2, 1, 1, 1]
    np.testing.assert_allclose(percentile[:4, 0], [2.5 / 3, 0.0, 2.5 / 3, 1 / 3])
    np.testing.assert_allclose(percentile[4:, 1], [0.5, 0.5])


def test_written_ranks_follow_the_forecasts(run: Path, debug_market: tuple[Path, Path]) -> None:
    table = predict_run(run, run.parent / "ranks.parquet", data=debug_market[0], dates="all").table
    for date in table.column("date").unique().to_pylist()[-3:]:
        day = table.filter(pc.equal(table.column("date"), date))
        n = day.num_rows
        for h in HORIZONS:
            values, rank = day.column(f"model_{h}d").to_numpy(), day.column(f"rank_{h}d").to_numpy()
            assert sorted(rank) == list(range(1, n + 1))  # no ties among float forecasts here
            assert (np.argsort(-values, kind="stable") == np.argsort(rank, kind="stable")).all()
            np.testing.assert_allclose(day.column(f"pct_{h}d").to_numpy(), (n - rank) / (n - 1))


def test_prices_are_built_with_the_runs_settings(run: Path, debug_market: tuple[Path, Path]) -> None:
    from_panel = predict_run(run, run.parent / "a.parquet", data=debug_market[0], dates="latest").table
    from_prices = predict_run(run, run.parent / "b.parquet", prices=debug_market[1], dates="latest").table
    assert from_prices.equals(from_panel)  # the same builder, the same settings: the same bytes


def test_a_checkpoint_forecasts_with_its_best_weights(run: Path, debug_market: tuple[Path, Path]) -> None:
    first, last = checkpoint_dirs(run / "checkpoints")[0], checkpoint_dirs(run / "checkpoints")[-1]
    selected = predict_run(run, run.parent / "sel.parquet", data=debug_market[0]).table
    final = predict_run(last, run.parent / "last.parquet", data=debug_market[0])
    assert final.weights == last / "best.safetensors"
    assert final.table.equals(selected)  # one epoch: the best so far at its end is the selected model
    early = predict_run(first, run.parent / "early.parquet", data=debug_market[0])
    assert early.weights == first / "average.safetensors"  # before the first evaluation: the average
    assert not early.table.equals(selected)


# --- refusals: each names what is wrong, exit 2, and writes nothing -------------------------------------------


def _rewrite(source: Path, target: Path, change) -> Path:  # type: ignore[no-untyped-def]
    write_parquet(change(pq.read_table(source)), target)
    return target


def _refused(run: Path, out: Path, error: type[Exception], match: str, **kwargs: object) -> None:
    with pytest.raises(error, match=match) as caught:
        predict_run(run, out, **kwargs)  # type: ignore[arg-type]
    assert caught.value.exit_code == 2  # type: ignore[attr-defined]
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.drop_columns(["feat_ret_1d"]), r"column 'feat_ret_1d' is missing .* the run was trained on"),
        (lambda t: t.append_column("feat_new", t.column("feat_ret_1d")), r"column 'feat_new' is not one the run"),
        (lambda t: t.drop_columns(["mkt_ret_1d"]), r"column 'mkt_ret_1d' is missing"),
        (lambda t: t.drop_columns(["target_20d"]), r"column 'target_20d' is missing for horizon 20"),
    ],
)
def test_a_panel_with_other_columns_is_refused_by_name(
    run: Path, debug_market: tuple[Path, Path], change, match: str
) -> None:  # type: ignore[no-untyped-def]
    panel = _rewrite(debug_market[0], run.parent / "other.parquet", change)
    _refused(run, run.parent / "out.parquet", DataContractError, match, data=panel)


def test_feature_columns_in_another_order_are_refused(run: Path, debug_market: tuple[Path, Path]) -> None:
    names = read_run_inputs(run).features

    def swap(table: pa.Table) -> pa.Table:
        order = [c for c in table.column_names if c not in names[:2]]
        at = table.column_names.index(names[0])
        return table.select([*order[:at], names[1], names[0], *order[at:]])

    panel = _rewrite(debug_market[0], run.parent / "swapped.parquet", swap)
    _refused(
        run,
        run.parent / "out.parquet",
        DataContractError,
        f"position 0 is '{names[1]}', the run's is '{names[0]}'",
        data=panel,
    )


@pytest.mark.parametrize(
    ("dates", "error", "match"),
    [
        (
            "2018-12-29",
            DataContractError,
            r"date 2018-12-29 is not in the panel .* nearest date before it is 2018-12-28",
        ),
        (
            "2018-01-03",
            DataContractError,
            r"date 2018-01-03: \d+ stocks have a full 10-day lookback window .* starts before",
        ),
        ("2018-12-28,2031-01-01", DataContractError, r"date 2031-01-01 is not in the panel"),
        ("28/12/2018", ConfigError, r"invalid --dates: '28/12/2018' is not a date"),
        ("2018-02-30", ConfigError, r"invalid --dates: '2018-02-30' is not a date"),
    ],
)
def test_a_date_that_cannot_be_forecast_is_refused(
    run: Path, debug_market: tuple[Path, Path], dates: str, error: type[Exception], match: str
) -> None:
    _refused(run, run.parent / "out.parquet", error, match, data=debug_market[0], dates=dates)


def test_an_infinite_input_is_refused(run: Path, debug_market: tuple[Path, Path]) -> None:
    def poison(table: pa.Table) -> pa.Table:
        values = table.column("feat_ret_1d").to_numpy().copy()
        values[-1] = np.inf  # the last row: the last date, which is the default date to forecast
        return table.set_column(table.column_names.index("feat_ret_1d"), "feat_ret_1d", pa.array(values))

    panel = _rewrite(debug_market[0], run.parent / "inf.parquet", poison)
    _refused(
        run,
        run.parent / "out.parquet",
        DataContractError,
        r"column 'feat_ret_1d': infinite value at \(2018-12-28",
        data=panel,
    )


def _copy_run(run: Path, target: Path, *names: str) -> Path:
    target.mkdir()
    for name in names:
        shutil.copy(run / name, target / name)
    return target


def test_a_run_without_its_files_is_refused_by_name(run: Path, debug_market: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    bare = _copy_run(run, tmp_path / "bare", "run.json", "config.yaml", INPUTS_FILE)
    _refused(
        bare,
        out,
        InputFileError,
        r"model.safetensors: missing; the run did not finish and has no checkpoint",
        data=debug_market[0],
    )
    shutil.copytree(run / "checkpoints", bare / "checkpoints")
    newest = checkpoint_dirs(bare / "checkpoints")[-1]
    _refused(bare, out, InputFileError, f"give {newest}", data=debug_market[0])
    no_config = _copy_run(run, tmp_path / "noconfig", "run.json", "model.safetensors", INPUTS_FILE)
    _refused(no_config, out, InputFileError, r"config.yaml: missing", data=debug_market[0])
    no_inputs = _copy_run(run, tmp_path / "noinputs", "run.json", "model.safetensors", "config.yaml")
    _refused(no_inputs, out, InputFileError, r"inputs.json: missing", data=debug_market[0])
    _refused(tmp_path / "absent", out, InputFileError, r"no such run directory", data=debug_market[0])


def test_weights_of_another_shape_are_refused(run: Path, debug_market: tuple[Path, Path], tmp_path: Path) -> None:
    other = _copy_run(run, tmp_path / "other", "run.json", "config.yaml", INPUTS_FILE)
    weights = load_file(str(run / "model.safetensors"))
    name = next(k for k, v in weights.items() if v.dim() == 2)
    weights[name] = torch.zeros(weights[name].shape[0] + 1, weights[name].shape[1])
    save_file(weights, str(other / "model.safetensors"))
    _refused(other, tmp_path / "out.parquet", CheckpointError, f"{name} is ", data=debug_market[0])


def test_an_existing_output_is_kept_unless_overwrite(
    run: Path, debug_market: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "f.parquet"
    out.write_bytes(b"mine")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        predict_run(run, out, data=debug_market[0])
    assert out.read_bytes() == b"mine"
    with pytest.raises(OutputExistsError, match="is a directory"):
        predict_run(run, tmp_path, data=debug_market[0], overwrite=True)
    predict_run(run, out, data=debug_market[0], overwrite=True)
    assert _table(out).num_rows > 0


def test_at_most_one_source_of_data(run: Path, debug_market: tuple[Path, Path], tmp_path: Path) -> None:
    _refused(
        run, tmp_path / "o.parquet", ConfigError, "at most one of --data", data=debug_market[0], prices=debug_market[1]
    )


def test_without_a_source_the_run_forecasts_from_the_panel_it_trained_on(
    run: Path, debug_market: tuple[Path, Path], tmp_path: Path
) -> None:
    own = predict_run(run, tmp_path / "own.parquet").table
    given = predict_run(run, tmp_path / "given.parquet", data=debug_market[0]).table
    assert own.num_rows > 0 and own.equals(given)
    moved = _copy_run(run, tmp_path / "moved", "run.json", "config.yaml", "model.safetensors", INPUTS_FILE)
    inputs = json.loads((moved / INPUTS_FILE).read_text())
    (moved / INPUTS_FILE).write_text(json.dumps({**inputs, "panel": str(tmp_path / "gone.parquet")}))
    _refused(moved, tmp_path / "o.parquet", ConfigError, "gone.parquet, which is not there any more")
