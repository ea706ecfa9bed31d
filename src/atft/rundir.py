"""The run directory: every run writes into its own fresh directory, atomically, file by file.

Layout (all written by rank 0 only)::

    RUN_DIR/
      config.yaml          the effective config of this run
      config.sources.yaml  where each value came from: default, file, environment variable or --set
      metrics.jsonl        one JSON object per logging step / evaluation (append-only, flushed)
      predictions.parquet  model, baseline and (synthetic) oracle predictions on the val and test days
      report.json, report.md, *.png   the validation report (``atft.report``)

Numbers in the report come from this directory only, never from another run's files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from atft.config import Config, config_sources, dump_config
from atft.errors import OutputExistsError
from atft.io import atomic_open


class RunDir:
    """A fresh run directory. An existing one is refused unless ``overwrite`` (then it is replaced)."""

    def __init__(self, path: str | Path, cfg: Config, overwrite: bool = False) -> None:
        self.path = Path(path)
        blocked = next((p for p in (self.path, *self.path.parents) if p.exists() and not p.is_dir()), None)
        if blocked is not None:
            raise OutputExistsError(f"{self.path}: cannot be a run directory, {blocked} is not a directory")
        if self.path.exists() and any(self.path.iterdir()):
            if not overwrite:
                raise OutputExistsError(f"{self.path}: run directory exists and is not empty (pass --overwrite)")
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        with atomic_open(self.path / "config.yaml") as fh:
            fh.write(dump_config(cfg))
        with atomic_open(self.path / "config.sources.yaml") as fh:
            yaml.safe_dump(config_sources(cfg), fh, sort_keys=False)

    @classmethod
    def reopen(cls, path: str | Path) -> RunDir:
        """An existing run directory a resumed run continues in (its config files stay as they are)."""
        run = cls.__new__(cls)
        run.path = Path(path)
        return run

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, data: Any) -> None:
        with atomic_open(self.path / name) as fh:
            json.dump(data, fh, indent=2, default=float)
