"""A kill at any write of a checkpoint or of the final write-out leaves a run that ``--resume auto`` finishes
with the same artefacts as a run that was never killed.

``kill_driver.py`` runs the container's entry point and SIGKILLs it just before its N-th durable-write step
(``os.fsync``, ``os.replace``, ``os.rename``, ``shutil.rmtree``). An unbroken reference run, with
``train.keep_checkpoints=1`` (the setting where a careless re-save leaves no checkpoint at all), logs every
step; the points tried are every step of its last checkpoint save and every step after it (the weights,
predictions, report and plots). For each, the killed run is resumed and must end with the reference's
``model.safetensors`` and ``predictions.parquet`` byte for byte, the same records in ``events.jsonl`` (replayed
steps left out) and the same ``report.json`` but for wall-clock figures (times, rates, memory) and the run
directory's own path --
and it must have resumed from a checkpoint, not started over (which would also reach the same artefacts).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from processes import run_python

from factories import run_records

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "configs" / "debug.yaml"
DRIVER = Path(__file__).with_name("kill_driver.py")
# fold 0, one epoch of 242 steps: a checkpoint every 22 steps, so the epoch's end saves step 242 again -- the
# re-save that must put the new checkpoint in place before the old one goes (asserted below)
SETS = ["split.fold=0", "train.epochs=1", "train.checkpoint_every=22", "train.log_every=10", "train.keep_checkpoints=1"]
SHARDS = 4
WALL_CLOCK = {"time", "wall_s", "stock_days_per_s", "peak_rss_bytes", "run"}

pytestmark = pytest.mark.slow


def _run(panel: Path, out: Path, log: Path, kill_at: int = 0) -> subprocess.CompletedProcess[str]:
    args = ["--config", str(DEBUG), "--data", str(panel), "--out", str(out), "--resume", "auto"]
    args += [a for s in SETS for a in ("--set", s)]
    return run_python(DRIVER, *args, env={"ATFT_KILL_LOG": str(log), "ATFT_KILL_AT": str(kill_at)}, timeout=300)


def _steps(log: Path) -> list[tuple[int, str, str]]:
    rows = [line.split("\t") for line in log.read_text().splitlines()]
    return [(int(n), name, path) for n, name, path in rows]


def _last_save_onwards(steps: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """The steps of the run's last checkpoint save (from its first file write) and everything after it, but
    of the plots only the first: each is written the same way (temporary file, fsync, rename, fsync)."""
    last_rename = max(i for i, (_, name, path) in enumerate(steps) if name == "rename" and "/checkpoints/" in path)
    tmp_dir = Path(steps[last_rename][2].split(" -> ")[0]).name  # the temporary directory the last save built
    first = min(i for i, (_, _, path) in enumerate(steps) if tmp_dir in path)
    plots = [i for i, (_, _, path) in enumerate(steps) if i > first and ".png" in path]
    later_plots = set(range(plots[2], plots[-1] + 2)) if len(plots) > 2 else set()  # the first plot's steps stay
    return [step for i, step in enumerate(steps) if i >= first and i not in later_plots]


def _without_wall_clock(node: object) -> object:
    if isinstance(node, dict):
        return {k: _without_wall_clock(v) for k, v in node.items() if k not in WALL_CLOCK}
    if isinstance(node, list):
        return [_without_wall_clock(v) for v in node]
    return node


def _records(run: Path) -> list[object]:
    """The run's records without wall-clock figures and without the ``resume`` records a resumed run adds."""
    return [_without_wall_clock(r) for r in run_records(run) if r["kind"] != "resume"]


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, debug_panel: Path
) -> tuple[Path, Path, list[tuple[int, str, str]]]:
    root = tmp_path_factory.mktemp("kill-points")
    done = _run(debug_panel, root / "reference", root / "reference.log")
    assert done.returncode == 0, done.stderr
    return debug_panel, root / "reference", _last_save_onwards(_steps(root / "reference.log"))


def test_the_points_cover_a_whole_checkpoint_save_and_the_final_write_out(
    reference: tuple[Path, Path, list[tuple[int, str, str]]],
) -> None:
    _, _, points = reference
    names = {name for _, name, _ in points}
    files = {Path(path).name for _, _, paths in points for path in paths.split(" -> ")}
    assert {"fsync", "rename", "rmtree", "replace"} <= names
    assert {"model.safetensors", "state.pt", "manifest.json", "predictions.parquet", "report.json"} <= files
    assert "step-000000242-1" in files and "step-000000242" in files, "the last save re-saves the epoch's last step"


@pytest.mark.parametrize("shard", range(SHARDS))
def test_a_kill_at_any_write_resumes_to_the_same_artefacts(
    shard: int, reference: tuple[Path, Path, list[tuple[int, str, str]]], tmp_path: Path
) -> None:
    panel, ref, points = reference
    for number, name, path in points[shard::SHARDS]:
        out = tmp_path / f"killed-{number}"
        killed = _run(panel, out, tmp_path / f"{number}.log", kill_at=number)
        assert killed.returncode == -9, f"not killed at step {number} ({name} {path}): {killed.stderr[-2000:]}"
        resumed = _run(panel, out, tmp_path / f"{number}-resume.log")
        where = f"killed at step {number}, {name} {path}"
        assert resumed.returncode == 0, f"{where}: resume failed:\n{resumed.stderr[-3000:]}"
        for artefact in ("model.safetensors", "predictions.parquet"):
            same = (out / artefact).read_bytes() == (ref / artefact).read_bytes()
            assert same, f"{where}: {artefact} differs from the unbroken run's"
        assert _records(out) == _records(ref), f"{where}: the records in events.jsonl differ"
        assert any(r["kind"] == "resume" for r in run_records(out)), f"{where}: started over instead of resuming"
        report, expected = (json.loads((r / "report.json").read_text()) for r in (out, ref))
        assert _without_wall_clock(report) == _without_wall_clock(expected), f"{where}: report.json differs"
        assert (out / "report.md").is_file()
