"""What real price files hold that a careful user wants to hear about, said by name, never silently fixed.

Real panels (the S&P 500 development panel among them) carry vendor artefacts and market events the
builder must survive without hiding them: daily moves beyond +-50% (most are real -- 2008 -- a few look like
bad prints), rows of zero volume, stocks that skip trading days between their first and last row, and days
whose universe is too thin for a cross-section. Each is counted and named here; what the builder then does
with it is part of the message, so the user can decide whether to clean the file:

* a large move is kept as the prices say: returns and targets use it, every feature z-score is clipped at
  ``features.clip``;
* a zero-volume row has no volume features (NaN, masked), the rest of its features stay;
* a gap: the return after it spans the whole gap, rolling windows count rows, not calendar days;
* a day with fewer than ``data.min_stocks_per_day`` stocks is dropped from training and evaluation.
"""

from __future__ import annotations

import numpy as np

BIG_MOVE = 0.5
"""|daily return| above this is reported."""


def _first(mask: np.ndarray, dates: np.ndarray, symbols: list[str]) -> str:
    day, stock = (int(i) for i in np.argwhere(mask)[0])
    return f"{symbols[stock]} on {dates[day]}"


def price_anomalies(
    ret: np.ndarray,
    present: np.ndarray,
    volume: np.ndarray | None,
    dates: np.ndarray,
    symbols: list[str],
    min_stocks: int,
    clip: float,
) -> list[str]:
    """One warning per kind of anomaly in dense ``[D, N]`` daily returns (NaN: none), rows present and volume.

    The builder calls it with the prices it read, the data contract with a panel (which has no volume).
    """
    warnings = []
    with np.errstate(invalid="ignore"):
        big = np.abs(ret) > BIG_MOVE  # NaN (no row on either day) compares False: no move
    if big.any():
        day, stock = (int(i) for i in np.argwhere(big)[0])
        warnings.append(
            f"daily returns: {int(big.sum())} move(s) beyond +-{BIG_MOVE:.0%}, first {symbols[stock]} on "
            f"{dates[day]} ({ret[day, stock]:+.1%}); kept as the prices say (targets and returns use them), "
            f"every feature z-score is clipped at +-{clip:g} (features.clip)"
        )
    if volume is not None and (zero := present & (volume == 0)).any():
        warnings.append(
            f"volume: {int(zero.sum())} row(s) with zero volume, first {_first(zero, dates, symbols)}; their volume "
            "features are missing (NaN, masked), the rest of their features stay"
        )
    first, last = present.argmax(0), len(present) - 1 - present[::-1].argmax(0)
    inside = (np.arange(len(present))[:, None] >= first) & (np.arange(len(present))[:, None] <= last)
    gap = inside & ~present & present.any(0)
    if gap.any():
        warnings.append(
            f"gaps: {int(gap.any(0).sum())} stock(s) skip {int(gap.sum())} trading day(s) between their first and "
            f"last row, first {_first(gap, dates, symbols)}; the return after a gap spans it"
        )
    per_day = present.sum(1)
    if (thin := per_day < min_stocks).any():
        where = int(np.argmax(thin))
        warnings.append(
            f"thin days: {int(thin.sum())} date(s) with fewer than data.min_stocks_per_day={min_stocks} stocks, "
            f"first {dates[where]} ({int(per_day[where])}); those days are dropped from training and evaluation"
        )
    return warnings
