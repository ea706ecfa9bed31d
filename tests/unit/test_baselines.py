"""The baselines: each fitted on the fold's training rows only, the trees stopped on validation rows only, the
synthetic oracle's coefficients from training days only, and every forecast on the rows asked for."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch

from atft.baselines import BaselineParams, Baselines, TreeParams, fit_ridge, fold_rows, trailing_return
from atft.baselines.oracle import fit_oracle
from atft.config import FeatureConfig, SynthConfig
from atft.data.batching import eligible_stocks
from atft.data.features import build_panel
from atft.data.panel import DensePanel, load_panel
from atft.data.synth import ORACLE_FIT_COLUMNS, generate_prices, oracle_part_columns
from atft.errors import DataContractError
from atft.metrics.finance import daily_rank_ic
from atft.runs.files import write_parquet
from factories import make_panel_table

SMALL_TREES = TreeParams(min_data_in_leaf=20, num_leaves=15, max_rounds=200, early_stopping_rounds=20, num_threads=1)
"""Sized for the few thousand rows of a test panel (the defaults need hundreds of thousands); one thread, as
pytest-xdist runs two workers on two cores and more threads than free cores make LightGBM crawl."""
LOOKBACK = 20


def _panel(tmp_path: Path, table: pa.Table | None = None, horizons: tuple[int, ...] = (1, 5), **kw: Any) -> DensePanel:
    path = tmp_path / "p.parquet"
    write_parquet(make_panel_table(**kw) if table is None else table, path)
    return load_panel(path, list(horizons))


def _split(panel: DensePanel, train: range, val: range, test: range) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    eligible = eligible_stocks(panel, LOOKBACK)
    return {
        name: fold_rows(eligible, days, LOOKBACK) for name, days in (("train", train), ("val", val), ("test", test))
    }


def _rank_ic(days: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> float:
    _, values, _ = daily_rank_ic(days.numpy(), pred.numpy(), target.numpy())
    return float(values.mean())


def _nonlinear_table(n_days: int = 140, n_stocks: int = 80) -> pa.Table:
    """Targets that depend on two features only through the sign of their product: no linear fit can see it."""
    table = make_panel_table(n_days=n_days, n_stocks=n_stocks, drop=0.0, seed=3)
    f0, f1 = (table[c].to_numpy() for c in ("feat_f0", "feat_f1"))
    rng = np.random.default_rng(4)
    day = np.unique(table["date"].to_numpy(), return_inverse=True)[1]
    for h in (1, 5):
        y = 0.01 * (np.sign(f0 * f1) + 2.0 * rng.standard_normal(len(f0)))
        y[day >= n_days - h] = np.nan
        table = table.set_column(
            table.schema.get_field_index(f"target_{h}d"), f"target_{h}d", pa.array(y, pa.float32())
        )
    return table


@pytest.fixture(scope="module")
def nonlinear(tmp_path_factory: pytest.TempPathFactory) -> tuple[DensePanel, dict]:
    panel = _panel(tmp_path_factory.mktemp("nonlinear"), _nonlinear_table())
    return panel, _split(panel, range(0, 90), range(96, 116), range(122, 140))


def test_trailing_return_compounds_the_window(tmp_path: Path) -> None:
    panel = _panel(tmp_path, drop=0.0)
    days, stocks = torch.tensor([25, 30]), torch.tensor([3, 7])
    got = trailing_return(panel, days, stocks, 5)
    for k in range(2):
        r = panel.returns[days[k] - 4 : days[k] + 1, stocks[k]].double().numpy()
        # log1p-sum-expm1 (the code) and a product (here) agree to ~1e-16 in float64; the float32 result to its
        # rounding, 6e-8 relative
        assert got[k].item() == pytest.approx(np.prod(1 + r) - 1, rel=1e-6)
    assert math.isnan(trailing_return(panel, torch.tensor([2]), torch.tensor([0]), 5).item())


def test_ridge_recovers_a_planted_linear_signal(tmp_path: Path) -> None:
    panel = _panel(tmp_path, n_days=60, n_stocks=40, drop=0.0)
    days, stocks = (t.flatten() for t in torch.meshgrid(torch.arange(50), torch.arange(40), indexing="ij"))
    beta = fit_ridge(panel, days, stocks)  # factories: target = 0.01*sqrt(h)*(0.05*f0 + noise)
    assert beta.shape == (2 * 4 + 1, 2)
    assert beta[0, 0] > 0 and abs(beta[0, 0]) > abs(beta[1:4, 0]).max()


def test_forecasts_cover_every_source_and_row(nonlinear: tuple[DensePanel, dict]) -> None:
    panel, rows = nonlinear
    baselines = Baselines.fit(panel, *rows["train"], *rows["val"], BaselineParams(lightgbm=SMALL_TREES))
    days, stocks = rows["test"]
    out = baselines.forecast(days, stocks)
    assert set(out) == {"momentum", "reversal", "ridge", "lightgbm", "oracle"}  # the factory panel gives oracle_<h>d
    assert all(v.shape == (len(days), 2) and v.dtype == torch.float32 for v in out.values())
    torch.testing.assert_close(
        out["reversal"][:, 0], -trailing_return(panel, days, stocks, 5), rtol=0, atol=0, equal_nan=True
    )
    assert panel.oracle is not None
    assert torch.equal(out["oracle"], panel.oracle[days, stocks]), "a given oracle_<h>d is used as is"
    assert torch.isfinite(out["lightgbm"]).all()
    summary = baselines.summary()
    assert summary["lightgbm_train_rows"] == summary["lightgbm_available_rows"] == len(rows["train"][0])
    assert 1 <= summary["lightgbm_rounds_5d"] <= SMALL_TREES.max_rounds
    without = Baselines.fit(panel, *rows["train"], *rows["val"], BaselineParams(lightgbm=None))
    assert "lightgbm" not in without.forecast(days, stocks)


def test_lightgbm_beats_ridge_on_a_nonlinear_signal(nonlinear: tuple[DensePanel, dict]) -> None:
    panel, rows = nonlinear
    baselines = Baselines.fit(panel, *rows["train"], *rows["val"], BaselineParams(lightgbm=SMALL_TREES))
    days, stocks = rows["test"]
    out = baselines.forecast(days, stocks)
    target = panel.targets[days, stocks, 0]
    trees, ridge = _rank_ic(days, out["lightgbm"][:, 0], target), _rank_ic(days, out["ridge"][:, 0], target)
    # sign(f0 f1) itself would score ~0.43 (its correlation with itself plus twice its size of noise is 1/sqrt(5));
    # the trees scored 0.39, the ridge, which cannot see a product's sign, 0.01
    assert trees > 0.25, (trees, ridge)
    assert abs(ridge) < 0.1, (trees, ridge)


def test_lightgbm_is_deterministic(nonlinear: tuple[DensePanel, dict]) -> None:
    panel, rows = nonlinear
    params = BaselineParams(lightgbm=SMALL_TREES)
    first, again = (Baselines.fit(panel, *rows["train"], *rows["val"], params) for _ in range(2))
    days, stocks = rows["test"]
    assert torch.equal(first.forecast(days, stocks)["lightgbm"], again.forecast(days, stocks)["lightgbm"])
    other = Baselines.fit(
        panel, *rows["train"], *rows["val"], BaselineParams(lightgbm=dataclasses.replace(SMALL_TREES, seed=1))
    )
    assert not torch.equal(first.forecast(days, stocks)["lightgbm"], other.forecast(days, stocks)["lightgbm"])


def _poisoned(panel: DensePanel, days: torch.Tensor, stocks: torch.Tensor) -> DensePanel:
    """The panel with the targets of the rows (days, stocks) replaced by large noise."""
    targets = panel.targets.clone()
    targets[days, stocks] = torch.randn(len(days), targets.shape[-1], generator=torch.Generator().manual_seed(0))
    return dataclasses.replace(panel, targets=targets)


def test_lightgbm_never_reads_test_targets_and_stops_on_validation_ones(nonlinear: tuple[DensePanel, dict]) -> None:
    panel, rows = nonlinear
    params = BaselineParams(lightgbm=SMALL_TREES)
    days, stocks = rows["test"]
    clean = Baselines.fit(panel, *rows["train"], *rows["val"], params).forecast(days, stocks)["lightgbm"]
    test_poisoned = _poisoned(panel, *rows["test"])
    again = Baselines.fit(test_poisoned, *rows["train"], *rows["val"], params).forecast(days, stocks)["lightgbm"]
    assert torch.equal(clean, again)
    val_poisoned = _poisoned(panel, *rows["val"])
    moved = Baselines.fit(val_poisoned, *rows["train"], *rows["val"], params)
    assert not torch.equal(clean, moved.forecast(days, stocks)["lightgbm"]), "early stopping reads validation labels"


def test_training_rows_over_the_cap_are_subsampled_by_seed(nonlinear: tuple[DensePanel, dict]) -> None:
    panel, rows = nonlinear
    cap = len(rows["train"][0]) // 2
    params = BaselineParams(lightgbm=dataclasses.replace(SMALL_TREES, max_train_rows=cap))
    first, again = (Baselines.fit(panel, *rows["train"], *rows["val"], params) for _ in range(2))
    assert first.summary()["lightgbm_train_rows"] == cap
    assert first.summary()["lightgbm_available_rows"] == len(rows["train"][0])
    days, stocks = rows["test"]
    assert torch.equal(first.forecast(days, stocks)["lightgbm"], again.forecast(days, stocks)["lightgbm"])


def test_lightgbm_without_validation_labels_is_refused(nonlinear: tuple[DensePanel, dict]) -> None:
    panel, rows = nonlinear
    targets = panel.targets.clone()
    targets[rows["val"][0], rows["val"][1], 1] = float("nan")
    unlabelled = dataclasses.replace(panel, targets=targets)
    with pytest.raises(DataContractError, match=r"target_5d: .* 0 validation rows"):
        Baselines.fit(unlabelled, *rows["train"], *rows["val"], BaselineParams(lightgbm=SMALL_TREES))


# --- the synthetic oracle, fitted per fold ----------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[DensePanel, dict]:
    prices = generate_prices(SynthConfig(n_stocks=60, n_days=300), horizons=(1, 5))
    panel = _panel(tmp_path_factory.mktemp("synth"), build_panel(prices, FeatureConfig(), (1, 5)))
    return panel, _split(panel, range(0, 180), range(190, 240), range(250, 300))


def _with_news(panel: DensePanel, days: torch.Tensor, stocks: torch.Tensor) -> DensePanel:
    """The panel with the hidden news of the rows (days, stocks) replaced by noise."""
    assert panel.oracle_inputs is not None
    inputs = panel.oracle_inputs.clone()
    k = panel.oracle_input_names.index("oracle_fit_news")
    inputs[days, stocks, k] = 100.0 * torch.randn(len(days), generator=torch.Generator().manual_seed(0))
    return dataclasses.replace(panel, oracle_inputs=inputs)


def test_no_oracle_column_is_a_model_input(synthetic: tuple[DensePanel, dict]) -> None:
    panel, _ = synthetic
    assert not [name for name in panel.feature_names if "oracle" in name]
    assert panel.oracle is None, "the synthetic panel gives the oracle in parts only"
    expected = {*ORACLE_FIT_COLUMNS, *(c for h in (1, 5) for c in oracle_part_columns(h))}
    assert set(panel.oracle_input_names) == expected


def test_the_oracle_is_its_parts_with_coefficients_from_training_days(synthetic: tuple[DensePanel, dict]) -> None:
    panel, rows = synthetic
    oracle = fit_oracle(panel, *rows["train"])
    assert oracle is not None and oracle.rows == len(rows["train"][0])
    days, stocks = rows["test"]
    assert panel.oracle_inputs is not None
    inputs = panel.oracle_inputs[days, stocks].double()
    names = panel.oracle_input_names
    for k, h in enumerate((1, 5)):
        own, z, zbar = (inputs[:, names.index(c)] for c in oracle_part_columns(h))
        expected = own + oracle.coef[0] * z + oracle.coef[1] * zbar
        torch.testing.assert_close(oracle.forecast(panel, days, stocks)[:, k], expected.float())
    b1, b2 = oracle.coef
    assert b1 > 0 > b2, "z reveals the cluster's news; zbar removes the sector's shock"
    target = panel.targets[days, stocks, 1]
    assert _rank_ic(days, oracle.forecast(panel, days, stocks)[:, 1], target) > 0.03


def test_the_oracle_fit_reads_no_day_outside_training(synthetic: tuple[DensePanel, dict]) -> None:
    panel, rows = synthetic
    fitted = fit_oracle(panel, *rows["train"])
    assert fitted is not None
    after = torch.arange(180, panel.n_days)  # every day after the training days: purge, val, embargo, test
    outside = after.repeat_interleave(panel.n_stocks), torch.arange(panel.n_stocks).repeat(len(after))
    for poisoned in (_with_news(panel, *outside), _poisoned(panel, *outside)):
        again = fit_oracle(poisoned, *rows["train"])
        assert again is not None and again.coef == fitted.coef
    moved = fit_oracle(_with_news(panel, *rows["train"]), *rows["train"])
    assert moved is not None and moved.coef != pytest.approx(fitted.coef, rel=0.01), "the fit reads training news"
    baselines = Baselines.fit(panel, *rows["train"], *rows["val"], BaselineParams(lightgbm=None))
    assert baselines.oracle == fitted
    assert baselines.summary()["oracle_b1"] == fitted.coef[0]


def test_a_panel_with_some_oracle_parts_only_is_refused(tmp_path: Path) -> None:
    prices = generate_prices(SynthConfig(n_stocks=20, n_days=150), horizons=(1, 5))
    table = build_panel(prices, FeatureConfig(), (1, 5)).drop_columns(["oracle_lead_lag_zbar_5d"])
    panel = _panel(tmp_path, table)
    rows = _split(panel, range(0, 100), range(110, 130), range(135, 150))
    with pytest.raises(DataContractError, match="oracle_lead_lag_zbar_5d"):
        Baselines.fit(panel, *rows["train"], *rows["val"], BaselineParams(lightgbm=None))
