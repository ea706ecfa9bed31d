"""A walk-forward validation's plan: one ordinary training run per fold and seed, under one marked parent.

Layout (``atft validate --out PARENT``)::

    PARENT/
      validation.json        the marker and the plan: format, atft version, panel, folds, seeds
      config.yaml            the effective config every fold trains with (each adds split.fold and seed)
      runs/fold-03-seed-0/   an ordinary run directory (``python -m atft.train --out``), one per fold and seed
      logs/fold-03-seed-0.log  what that run printed
      report.json, report.md, *.png   the pooled out-of-sample report (:mod:`atft.validate.pooled`)

Why this layout: every fold is the same job ``atft train`` runs, so a fold can run here, in a parallel
process or as its own cluster job (``--set split.fold=K --set seed=S --out PARENT/runs/NAME``), and the
pooled report reads the run directories wherever they were written (``atft validate --report-only`` writes
the plan beside fold runs that cluster jobs wrote, :func:`atft.validate.runner.adopt_validation`). The plan
is stored so that a killed validation continues with exactly the unfinished runs, and a changed config or
panel is refused rather than mixed into one report.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import atft
from atft.config import Config, config_changes, dump_config, read_yaml
from atft.data.splits import Fold
from atft.errors import InputFileError, OutputExistsError
from atft.runs.files import atomic_open

MARKER = "validation.json"
FORMAT = 1


@dataclass(frozen=True)
class FoldRun:
    """One training run of the validation: fold ``fold`` (its test window ``label``) with model seed ``seed``."""

    fold: int
    label: str
    seed: int
    test_first: str
    test_last: str

    @property
    def name(self) -> str:
        return f"fold-{self.fold:02d}-seed-{self.seed}"

    def overrides(self) -> list[str]:
        """The ``--set`` overrides that make the validation's config this run's."""
        return [f"split.fold={self.fold}", f"seed={self.seed}"]


@dataclass(frozen=True)
class Plan:
    """What a validation trains: the panel and one :class:`FoldRun` per fold and seed (the config is beside it)."""

    panel: str
    seeds: list[int]
    runs: list[FoldRun]

    def run_dir(self, parent: Path, run: FoldRun) -> Path:
        return parent / "runs" / run.name

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "atft": atft.__version__,
            "panel": self.panel,
            "seeds": self.seeds,
            "runs": [asdict(r) for r in self.runs],
        }


def make_plan(cfg: Config, panel: Path, folds: list[Fold], dates: np.ndarray, seeds: list[int]) -> Plan:
    """Every fold for every seed, folds oldest first."""
    runs = [
        FoldRun(f.index, f.label, seed, str(dates[f.test.start]), str(dates[f.test.stop - 1]))
        for f in folds
        for seed in seeds
    ]
    return Plan(str(panel), list(seeds), runs)


def launch_order(runs: list[FoldRun]) -> list[FoldRun]:
    """The runs in the order to start them: newest fold first, seeds in order within a fold.

    Under the expanding scheme a newer fold trains on more days, so it runs longest. Started last, as the plan
    lists it, it runs alone at the end while the other jobs' cores idle; started first, the shorter folds fill
    in around it (longest-processing-time-first). From the fold times of the S&P 2010-2014 walk-forward at
    ``--jobs 2`` (932-1,638 s each), oldest-first would end after 3,583 s and newest-first after 3,031 s.
    """
    return sorted(runs, key=lambda r: -r.fold)


def read_plan(parent: Path) -> Plan:
    """The plan stored in ``PARENT/validation.json``; a missing or malformed one is an InputFileError naming it."""
    path = parent / MARKER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        runs = [FoldRun(**r) for r in data["runs"]]
        plan = Plan(str(data["panel"]), [int(s) for s in data["seeds"]], runs)
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InputFileError(f"{path}: not a validation's plan ({type(exc).__name__}: {exc})") from exc
    if data.get("format") != FORMAT:
        raise InputFileError(f"{path}: plan format {data.get('format')!r}; this atft reads {FORMAT}")
    return plan


def write_plan(parent: Path, plan: Plan, cfg: Config) -> None:
    """The marker first, then the config every fold reads; both atomically."""
    parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(parent / MARKER) as fh:
        json.dump(plan.to_json(), fh, indent=2)
        fh.write("\n")
    with atomic_open(parent / "config.yaml") as fh:
        fh.write(dump_config(cfg))


def check_same_plan(parent: Path, plan: Plan, cfg: Config) -> None:
    """A validation continues only with the plan and config it started with; each difference is named.

    The config is compared key by key with the ``config.yaml`` stored beside the plan
    (:func:`atft.config.config_changes`), so a validation an older atft started continues under a newer one
    that only added options at their defaults.
    """
    stored = read_plan(parent)
    differ = [
        f"{name}: {getattr(stored, name)!r} then, {getattr(plan, name)!r} now"
        for name in ("panel", "seeds")
        if getattr(stored, name) != getattr(plan, name)
    ]
    differ += [
        f"{key}: {then!r} then, {now!r} now"
        for key, (then, now) in config_changes(read_yaml(parent / "config.yaml"), cfg).items()
    ]
    if stored.runs != plan.runs:
        differ.append(f"folds: {[r.name for r in stored.runs]} then, {[r.name for r in plan.runs]} now")
    if differ:
        raise OutputExistsError(
            f"{parent}: a validation with another plan ({'; '.join(differ[:6])}); "
            "continue it with the same config, panel and --seeds, or choose a new --out"
        )
