"""Checkpoints: atomic, verified, pruned, and refused by name when corrupt or from another model."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
import yaml

from atft.config import dump_config, load_config
from atft.errors import CheckpointError
from atft.train.checkpoint import Checkpoint, checkpoint_dirs, latest_valid, load_checkpoint, save_checkpoint
from atft.train.resume import check_config


def _weights(width: int = 4) -> dict[str, torch.Tensor]:
    return {"layer.weight": torch.arange(width * 3, dtype=torch.float32).reshape(width, 3), "layer.bias": torch.ones(4)}


def _shapes(weights: dict[str, torch.Tensor]) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in weights.items()}


def _averaged() -> dict[str, torch.Tensor]:
    return {k: v * 0.5 for k, v in _weights().items()}


def _save(root: Path, step: int, keep: int = 3) -> Path:
    state = {"loop": {"step": step}, "rng": torch.get_rng_state(), "names": ["a", "b"], "lr": 1e-3}
    best = _weights() if step > 10 else None
    return save_checkpoint(root, step, _weights(), best, _averaged() if step > 10 else None, state, keep)


def test_round_trip_keeps_weights_best_average_and_state(tmp_path: Path) -> None:
    path = _save(tmp_path, 20)
    found = load_checkpoint(path, _shapes(_weights()))
    assert found.step == 20 and found.state["loop"] == {"step": 20} and found.state["names"] == ["a", "b"]
    assert all(torch.equal(found.model[k], v) for k, v in _weights().items())
    assert found.average is not None and all(torch.equal(found.average[k], v) for k, v in _averaged().items())
    assert found.best is not None and torch.equal(found.state["rng"], torch.get_rng_state())
    early = load_checkpoint(_save(tmp_path, 5), _shapes(_weights()))
    assert early.best is None and early.average is None


def test_only_the_newest_keep_are_kept_and_no_temporary_is_left(tmp_path: Path) -> None:
    for step in (5, 10, 15, 20, 25):
        _save(tmp_path, step, keep=2)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-000000020", "step-000000025"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_stray_temporary_from_a_killed_save_is_removed_and_never_loaded(tmp_path: Path) -> None:
    stray = tmp_path / ".step-000000030.abc.tmp"
    stray.mkdir()
    (stray / "model.safetensors").write_bytes(b"half")
    assert latest_valid(tmp_path, _shapes(_weights())) is None  # a temporary is not a checkpoint
    _save(tmp_path, 5)
    assert not stray.exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:40]), "checksum"),
        (lambda p: os.truncate(p / "state.pt", 10), "checksum mismatch"),
        (lambda p: (p / "state.pt").unlink(), "state.pt: missing"),
        (lambda p: os.truncate(p / "average.safetensors", 10), "average.safetensors: checksum mismatch"),
        (lambda p: (p / "manifest.json").write_text("{"), "unreadable checkpoint manifest"),
        (lambda p: (p / "manifest.json").unlink(), "unreadable checkpoint manifest"),
    ],
)
def test_a_damaged_checkpoint_is_a_named_error(tmp_path: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    path = _save(tmp_path, 20)
    damage(path)
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(path, _shapes(_weights()))
    assert str(path) in str(err.value)


def test_auto_falls_back_to_the_previous_good_checkpoint_and_says_why(tmp_path: Path) -> None:
    _save(tmp_path, 10)
    newest = _save(tmp_path, 20)
    os.truncate(newest / "model.safetensors", 16)
    found = latest_valid(tmp_path, _shapes(_weights()))
    assert found is not None and found.step == 10
    assert len(found.skipped) == 1 and "step-000000020" in found.skipped[0] and "checksum" in found.skipped[0]


def test_auto_with_every_checkpoint_damaged_lists_each(tmp_path: Path) -> None:
    for step in (10, 20):
        os.truncate(_save(tmp_path, step) / "state.pt", 3)
    with pytest.raises(CheckpointError, match=r"no usable checkpoint.*step-000000020.*step-000000010"):
        latest_valid(tmp_path, _shapes(_weights()))


def test_a_checkpoint_of_another_model_shape_names_the_tensor(tmp_path: Path) -> None:
    path = _save(tmp_path, 20)
    with pytest.raises(CheckpointError, match=r"another model shape: layer.weight is \(4, 3\).*\(8, 3\)"):
        load_checkpoint(path, _shapes(_weights(width=8)))
    with pytest.raises(CheckpointError, match=r"from another model: no tensor extra\.weight"):
        load_checkpoint(path, {**_shapes(_weights()), "extra.weight": torch.Size([2])})


class _Payload:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo pwned",))


def test_a_state_file_with_arbitrary_objects_is_refused_not_unpickled(tmp_path: Path) -> None:
    path = _save(tmp_path, 20)
    (path / "state.pt").write_bytes(pickle.dumps({"loop": _Payload()}, protocol=2))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["state.pt"] = hashlib.sha256((path / "state.pt").read_bytes()).hexdigest()
    (path / "manifest.json").write_text(json.dumps(manifest))  # a forged checksum: only weights_only stops it
    with pytest.raises(CheckpointError, match="cannot load the training state"):
        load_checkpoint(path, _shapes(_weights()))


class _Killed(BaseException):
    """Stands for SIGKILL at one point of a save: nothing after it runs (not even ``except Exception``)."""


_SAVE_STEPS = ("os.rename", "os.replace", "os.fsync", "shutil.rmtree", "atft.train.checkpoint.save_file", "torch.save")


def _kill_at(monkeypatch: pytest.MonkeyPatch, kill: int | None) -> list[str]:
    """Count each call of the save's file-system steps; raise :class:`_Killed` on call number ``kill``."""
    calls: list[str] = []
    for dotted in _SAVE_STEPS:
        module, name = dotted.rsplit(".", 1)
        real = getattr(__import__(module, fromlist=[name]), name)

        def step(*args: object, _real=real, _name=dotted, **kwargs: object) -> object:
            calls.append(_name)
            if kill is not None and len(calls) == kill:
                raise _Killed(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(dotted, step)
    return calls


def test_saving_a_step_again_never_leaves_no_checkpoint_even_with_keep_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An epoch that ends on a periodic save's step saves that step again. The old save used to be removed
    before the new one was renamed into place: a kill between the two left no checkpoint at all."""
    with monkeypatch.context() as counting:
        _save(tmp_path / "count", 10, keep=1)
        points = _kill_at(counting, None)
        _save(tmp_path / "count", 10, keep=1)
    assert len(points) > 8
    for kill in range(1, len(points) + 1):
        root = tmp_path / f"kill-{kill}"
        first = _save(root, 10, keep=1)
        with monkeypatch.context() as patched, pytest.raises(_Killed):
            _kill_at(patched, kill)
            _save(root, 10, keep=1)
        found = latest_valid(root, _shapes(_weights()))
        assert found is not None and found.step == 10, f"no checkpoint after a kill at {points[kill - 1]} #{kill}"
        assert found.path in (first, root / "step-000000010-1")
    again = _save(tmp_path / "count", 10, keep=1)
    assert [p.name for p in checkpoint_dirs(tmp_path / "count")] == [again.name] == ["step-000000010-2"]


def test_a_checkpoint_from_before_an_option_existed_resumes_while_the_option_keeps_its_default() -> None:
    stored = yaml.safe_load(dump_config(load_config(None)))
    del stored["loss"]["target"]  # written by an atft without loss.target
    older = Checkpoint(Path("step-000000200"), 200, _weights(), None, None, {"config": yaml.safe_dump(stored)})
    check_config(load_config(None), older)
    with pytest.raises(CheckpointError, match=r"loss.target: '<absent>' in the checkpoint, 'rank' now"):
        check_config(load_config(None, ["loss.target=rank"]), older)
