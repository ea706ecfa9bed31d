"""The run directory: every run writes into a directory atft created and marked, atomically, file by file.

Layout (all written by rank 0 only)::

    RUN_DIR/
      run.json             the marker, written first: atft made this directory (format, run id, atft version)
      config.yaml          the effective config of this run
      config.sources.yaml  where each value came from: default, file, environment variable or --set
      events.jsonl         the run's one record: every logged value and health finding (append-only)
      predictions.parquet  model, baseline and (synthetic) oracle predictions on the val and test days
      report.json, report.md, *.png   the validation report (``atft.report``)

Why a marker: ``--overwrite`` and ``--resume auto`` (which starts over a run killed before its first
checkpoint) remove what is in the directory. They do that only where ``run.json`` says atft made it; any
other non-empty directory is refused by name with what it holds, and left untouched. A symlinked ``--out``
is resolved once (:func:`resolve_out`) and the real path is used from then on.

Numbers in the report come from this directory only, never from another run's files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

import atft
from atft.config import Config, config_sources, dump_config
from atft.errors import OutputExistsError
from atft.runs.files import atomic_open, fsync_dir

MARKER = "run.json"
MARKER_FORMAT = 1
SHOWN_ENTRIES = 5


def resolve_out(path: str | Path) -> Path:
    """The absolute, symlink-free path of ``--out``, taken once so every later step uses the same directory.

    Raises:
        OutputExistsError: a path component is a file, or a symlink loop.
    """
    given = Path(path)
    blocked = next((p for p in (given, *given.parents) if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise OutputExistsError(f"{given}: cannot be a run directory, {blocked} is not a directory")
    try:
        return given.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise OutputExistsError(f"{given}: cannot be a run directory: {exc}") from exc


def is_marked(path: Path, marker: str) -> bool:
    """Whether ``path`` carries one of atft's markers (a JSON object naming atft in ``path/marker``)."""
    try:
        found = json.loads((path / marker).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(found, dict) and found.get("atft") is not None


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run directory atft created (it carries ``run.json``)."""
    return is_marked(path, MARKER)


def describe_contents(path: Path) -> str:
    """``'3 entries: data.csv, notes/, x.txt'`` (the first few, sorted), for messages that refuse a directory."""
    entries = sorted(path.iterdir(), key=lambda p: p.name)
    shown = [p.name + ("/" if p.is_dir() else "") for p in entries[:SHOWN_ENTRIES]]
    more = f", ... {len(entries) - SHOWN_ENTRIES} more" if len(entries) > SHOWN_ENTRIES else ""
    return f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}: {', '.join(shown)}{more}"


def refuse_foreign(path: Path, marker: str = MARKER) -> None:
    """Refuse a non-empty ``path`` without atft's ``marker``, naming it and what it holds; touch nothing.

    Raises:
        OutputExistsError: ``path`` is a non-empty directory atft did not create.
    """
    if path.is_dir() and any(path.iterdir()) and not is_marked(path, marker):
        kind = "an atft run directory" if marker == MARKER else "an atft validation"
        raise OutputExistsError(
            f"{path}: not empty and not {kind} (no {marker}); it holds {describe_contents(path)}. "
            "atft never removes or writes into a directory it did not create: choose a new or empty --out"
        )


def claim(path: Path, replace: bool, marker: str = MARKER) -> None:
    """Make sure atft may write afresh into ``path``; with ``replace``, empty a directory atft marked.

    An absent or empty directory is always fine. A non-empty one must carry ``marker`` (``run.json`` for a
    run, ``validation.json`` for a validation), and then is emptied only when ``replace``; a non-empty
    directory without it is never touched.

    Raises:
        OutputExistsError: ``path`` holds files atft did not write, or atft's and ``replace`` is False.
    """
    refuse_foreign(path, marker)
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not replace:
        raise OutputExistsError(
            f"{path}: run directory exists and is not empty (pass --overwrite to replace it, "
            "or --resume auto to continue it)"
        )
    _empty(path, marker)


def _empty(path: Path, marker: str) -> None:
    """Remove everything in a marked directory but the marker: a kill midway leaves it still marked."""
    for entry in path.iterdir():
        if entry.name == marker:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    fsync_dir(path)


class RunDir:
    """A fresh run directory (see :func:`claim` for what may be replaced), marked before anything else."""

    def __init__(self, path: str | Path, cfg: Config, overwrite: bool = False) -> None:
        self.path = resolve_out(path)
        claim(self.path, overwrite)
        self.path.mkdir(parents=True, exist_ok=True)
        run_id = os.environ.get("ATFT_RUN_ID", self.path.name)
        self.write_json(MARKER, {"format": MARKER_FORMAT, "atft": atft.__version__, "run_id": run_id})
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
