"""Run directories: atft writes and removes only inside directories it created and marked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import atft
from atft.config import load_config
from atft.errors import OutputExistsError
from atft.runs.directory import MARKER, RunDir, claim, is_run_dir, resolve_out
from atft.train.job import run_training


def _user_folder(path: Path) -> dict[str, bytes]:
    """A folder of a user's files (what `--out` must never delete), and its contents for comparison."""
    (path / "notes").mkdir(parents=True)
    files = {"data.csv": b"a,b\n1,2\n", "notes/todo.txt": b"keep me\n", "x.bin": b"\x00\x01"}
    for name, data in files.items():
        (path / name).write_bytes(data)
    return files


def _contents(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def test_a_new_run_directory_is_marked_first(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run", load_config())
    marker = json.loads((run.path / MARKER).read_text())
    assert marker["atft"] == atft.__version__ and marker["run_id"] == "run" and marker["format"] == 1
    assert is_run_dir(run.path)
    assert {p.name for p in run.path.iterdir()} == {MARKER, "config.yaml", "config.sources.yaml"}


@pytest.mark.parametrize("replace", [False, True])
def test_a_folder_atft_did_not_create_is_refused_by_name_and_left_untouched(tmp_path: Path, replace: bool) -> None:
    folder = tmp_path / "mine"
    files = _user_folder(folder)
    with pytest.raises(OutputExistsError, match=r"not an atft run directory") as refused:
        RunDir(folder, load_config(), overwrite=replace)
    message = str(refused.value)
    assert str(folder) in message and "3 entries: data.csv, notes/, x.bin" in message
    assert _contents(folder) == files


def test_resume_auto_on_a_users_folder_deletes_nothing(tmp_path: Path) -> None:
    """The fault this guards: `atft train --out DIR --resume auto` used to remove a non-empty DIR without
    checkpoints or report, and exit 0."""
    folder = tmp_path / "mine"
    files = _user_folder(folder)
    with pytest.raises(OutputExistsError, match=r"mine: not empty and not an atft run directory"):
        run_training(load_config(), folder, resume="auto")
    assert _contents(folder) == files


def test_a_marker_that_is_not_atfts_does_not_count(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    _user_folder(folder)
    (folder / MARKER).write_text('{"name": "some other tool"}')
    assert not is_run_dir(folder)
    (folder / MARKER).write_text("not json")
    assert not is_run_dir(folder)
    with pytest.raises(OutputExistsError):
        claim(folder, replace=True)


def test_overwrite_empties_a_run_directory_of_atfts(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run", load_config())
    (run.path / "checkpoints" / "step-000000001").mkdir(parents=True)
    (run.path / "events.jsonl").write_text("{}\n")
    with pytest.raises(OutputExistsError, match=r"pass --overwrite"):
        RunDir(run.path, load_config())
    again = RunDir(run.path, load_config(), overwrite=True)
    assert {p.name for p in again.path.iterdir()} == {MARKER, "config.yaml", "config.sources.yaml"}


def test_an_empty_existing_directory_is_used(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert is_run_dir(RunDir(tmp_path / "empty", load_config()).path)


def test_a_symlinked_out_is_resolved_once_and_used(tmp_path: Path) -> None:
    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    run = RunDir(link, load_config())
    assert run.path == target.resolve()
    assert (target / MARKER).is_file()
    again = RunDir(link, load_config(), overwrite=True)  # the marked target is replaced through the link
    assert again.path == target.resolve() and link.is_symlink()


def test_a_symlink_loop_or_a_file_in_the_way_is_a_named_error(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(OutputExistsError, match=r"loop"):
        resolve_out(loop / "run")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputExistsError, match=r"file is not a directory"):
        resolve_out(tmp_path / "file" / "run")
