import math

import numpy as np
import pytest
import torch

from atft.baselines import baseline_forecasts, fit_ridge, trailing_return
from atft.data.panel import load_panel
from atft.io import write_parquet
from factories import make_panel_table


def _panel(tmp_path, **kw):  # type: ignore[no-untyped-def]
    path = tmp_path / "p.parquet"
    write_parquet(make_panel_table(**kw), path)
    return load_panel(path, [1, 5])


def test_trailing_return_compounds_the_window(tmp_path) -> None:  # type: ignore[no-untyped-def]
    panel = _panel(tmp_path, drop=0.0)
    days, stocks = torch.tensor([25, 30]), torch.tensor([3, 7])
    got = trailing_return(panel, days, stocks, 5)
    for k in range(2):
        r = panel.returns[days[k] - 4 : days[k] + 1, stocks[k]].double().numpy()
        # log1p-sum-expm1 (the code) and a product (here) agree to ~1e-16 in float64; the float32 result to its
        # rounding, 6e-8 relative
        assert got[k].item() == pytest.approx(np.prod(1 + r) - 1, rel=1e-6)
    assert math.isnan(trailing_return(panel, torch.tensor([2]), torch.tensor([0]), 5).item())


def test_ridge_recovers_a_planted_linear_signal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    panel = _panel(tmp_path, n_days=60, n_stocks=40, drop=0.0)
    days, stocks = (t.flatten() for t in torch.meshgrid(torch.arange(50), torch.arange(40), indexing="ij"))
    beta = fit_ridge(panel, days, stocks)  # factories: target = 0.01*sqrt(h)*(0.05*f0 + noise)
    assert beta.shape == (2 * 4 + 1, 2)
    assert beta[0, 0] > 0 and abs(beta[0, 0]) > abs(beta[1:4, 0]).max()
    out = baseline_forecasts(panel, days, stocks, beta)
    assert set(out) == {"momentum", "reversal", "ridge", "oracle"}
    assert all(v.shape == (len(days), 2) for v in out.values())
    torch.testing.assert_close(
        out["reversal"][:, 0], -trailing_return(panel, days, stocks, 5), rtol=0, atol=0, equal_nan=True
    )
