"""What a run was trained on, recorded beside its weights, and the check that a panel gives the same inputs.

The model reads its inputs by position: the weights of feature column 7 multiply whatever sits in column 7.
A panel with the same number of columns in another order, or one feature renamed, would load, run and give
confident forecasts of nothing. So a run records the names and order of its input columns, its horizons and
its lookback (``RUN_DIR/inputs.json``), and a forecast panel must match them name for name; the first
difference is named, with the run's value.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from atft.config import Config
from atft.data.panel import FEATURE_PREFIX, MARKET_PREFIX, DensePanel
from atft.errors import InputFileError
from atft.runs.files import atomic_open

INPUTS_FILE = "inputs.json"
INPUTS_FORMAT = 1
_SHOWN = 5


@dataclass(frozen=True)
class RunInputs:
    """The input contract of a trained model: columns in the order the model reads them, horizons, lookback.

    Attributes:
        features: per-stock input columns (``feat_*``), in the panel's order.
        market: market-context columns (``mkt_*``), in the panel's order.
        horizons: forecast horizons in trading days, one head each.
        lookback: days of history per forecast.
        panel: the panel the run trained on (where it was read), for people.
        first_date / last_date: its calendar, for people ("trained on data up to ...").
    """

    features: list[str]
    market: list[str]
    horizons: list[int]
    lookback: int
    panel: str
    first_date: str
    last_date: str

    @classmethod
    def of(cls, panel: DensePanel, cfg: Config) -> RunInputs:
        """The inputs a run on ``panel`` with ``cfg`` trains on."""
        return cls(
            features=[FEATURE_PREFIX + name for name in panel.feature_names],
            market=[MARKET_PREFIX + name for name in panel.market_feature_names],
            horizons=list(cfg.data.horizons),
            lookback=cfg.data.lookback,
            panel=str(panel.source),
            first_date=str(panel.dates[0]),
            last_date=str(panel.dates[-1]),
        )

    def problems(self, panel: DensePanel) -> list[str]:
        """How ``panel``'s input columns differ from these (empty = none), each naming the first column.

        Horizons are not compared here: the panel is loaded with the run's horizons, and a missing
        ``target_<h>d`` column is refused by name while loading.
        """
        found = [
            _column_problem("feature", self.features, [FEATURE_PREFIX + n for n in panel.feature_names]),
            _column_problem("market", self.market, [MARKET_PREFIX + n for n in panel.market_feature_names]),
        ]
        return [p for p in found if p is not None]


def _column_problem(kind: str, run: list[str], panel: list[str]) -> str | None:
    """The first missing, extra or misplaced ``kind`` column of ``panel`` against the run's ``run``."""
    shown = ", ".join(run[:_SHOWN]) + (", ..." if len(run) > _SHOWN else "")
    trained = f"the run was trained on {len(run)} {kind} column(s): {shown or 'none'}"
    if missing := [c for c in run if c not in set(panel)]:
        return f"column '{missing[0]}' is missing ({len(missing)} of the run's {kind} columns missing); {trained}"
    if extra := [c for c in panel if c not in set(run)]:
        return f"column '{extra[0]}' is not one the run was trained on ({len(extra)} extra {kind} column(s)); {trained}"
    moved = next((i for i, (a, b) in enumerate(zip(run, panel, strict=True)) if a != b), None)
    if moved is not None:
        return (
            f"{kind} columns in another order: position {moved} is '{panel[moved]}', the run's is '{run[moved]}' "
            "(the model reads its inputs by position)"
        )
    return None


def write_run_inputs(run_dir: Path, panel: DensePanel, cfg: Config) -> None:
    """Record ``RUN_DIR/inputs.json`` (atomically): what ``atft predict`` checks a forecast panel against."""
    with atomic_open(run_dir / INPUTS_FILE) as fh:
        json.dump({"format": INPUTS_FORMAT, **asdict(RunInputs.of(panel, cfg))}, fh, indent=2)


def read_run_inputs(run_dir: Path) -> RunInputs:
    """The record :func:`write_run_inputs` wrote; a missing or unreadable one is an :class:`InputFileError`."""
    path = run_dir / INPUTS_FILE
    if not path.is_file():
        raise InputFileError(
            f"{path}: missing: the run does not record the input columns its model reads, so a panel's columns "
            "cannot be checked against them; retrain it with this atft (every run writes inputs.json)"
        )
    try:
        found: Any = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(found, dict) or found.pop("format", None) != INPUTS_FORMAT:
            raise ValueError(f"not an inputs record of format {INPUTS_FORMAT}")
        inputs = RunInputs(**found)
    except (OSError, ValueError, TypeError, RecursionError) as exc:
        raise InputFileError(f"{path}: unreadable ({exc})") from exc
    return inputs
