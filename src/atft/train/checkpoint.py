"""Checkpoints a killed or preempted run resumes from, exactly.

One checkpoint is one directory ``RUN_DIR/checkpoints/step-<step>/`` holding

* ``model.safetensors`` -- the weights being trained (safetensors: loading never runs code);
* ``best.safetensors`` -- the weights of the best epoch so far (absent before the first evaluation);
* ``average.safetensors`` -- the moving average of the weights (``train.weight_average``; absent when off);
* ``state.pt`` -- optimizer, scheduler, RNG, data order, monitor state, step, epoch and the effective
  config: only tensors, numbers, strings, lists and dicts, so it loads with ``torch.load(weights_only=True)``;
* ``manifest.json`` -- the format version, step, epoch and the SHA-256 of each file above.

A checkpoint is built in a hidden temporary directory, every file fsynced, then renamed into place (and
the parent fsynced): a kill at any moment leaves the previous checkpoints untouched and at most a stray
``.tmp`` directory, which the next save removes. A step saved again (an epoch ends on a periodic save's
step) gets a new name, ``step-<step>-<n>``, and the one it supersedes goes only after the new one is in
place, so there is never an instant without a complete checkpoint, even with ``keep=1``. The newest
``keep`` steps are kept. Loading verifies
every checksum and every tensor shape against the model; any mismatch is a :class:`CheckpointError` naming
the checkpoint and the fault. :func:`latest_valid` walks back from the newest checkpoint to the newest good
one and says which ones it skipped and why (``--resume auto``).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from atft.errors import CheckpointError
from atft.runs.files import fsync_dir

FORMAT = 1
PREFIX = "step-"
FILES = ("model.safetensors", "best.safetensors", "average.safetensors", "state.pt")


@dataclass
class Checkpoint:
    """A verified checkpoint: where it is, the weights, and the training state."""

    path: Path
    step: int
    model: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor] | None
    average: dict[str, torch.Tensor] | None
    state: dict[str, Any]
    skipped: list[str] = field(default_factory=list)  # newer checkpoints passed over, with the reason


def _saves(root: Path) -> list[tuple[int, int, Path]]:
    """``(step, generation, path)`` of each checkpoint directory under ``root``, oldest first.

    ``step-000000200`` is step 200's first save (generation 0), ``step-000000200-2`` its third.
    """
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        step, _, generation = path.name.removeprefix(PREFIX).partition("-")
        named = path.name.startswith(PREFIX) and step.isdigit() and (generation == "" or generation.isdigit())
        if named and path.is_dir():
            found.append((int(step), int(generation or 0), path))
    return sorted(found)


def checkpoint_dirs(root: Path) -> list[Path]:
    """Checkpoint directories under ``root``, oldest first (by step and save, not by file time)."""
    return [path for _, _, path in _saves(root)]


def checkpoints_root(run_dir: Path) -> Path:
    """The directory of a run's checkpoints: ``RUN_DIR/checkpoints``."""
    return run_dir / "checkpoints"


def checkpoint_path(root: Path, step: int, generation: int = 0) -> Path:
    """Where the ``generation``-th save of step ``step`` lives under ``root`` (zero-padded: names sort like steps)."""
    return root / (f"{PREFIX}{step:09d}" + (f"-{generation}" if generation else ""))


def save_checkpoint(
    root: Path,
    step: int,
    model: dict[str, torch.Tensor],
    best: dict[str, torch.Tensor] | None,
    average: dict[str, torch.Tensor] | None,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint ``step`` atomically under ``root`` and prune to the newest ``keep`` steps; returns its path.

    Order, so that a kill at any point leaves at least one complete checkpoint: build in a temporary
    directory; rename it into place under a name no checkpoint has; only then remove the saves of the same
    step it supersedes, then the steps beyond ``keep``.
    """
    root.mkdir(parents=True, exist_ok=True)
    for stray in root.glob(f".{PREFIX}*.tmp"):  # left by a kill during an earlier save
        shutil.rmtree(stray, ignore_errors=True)
    saves = _saves(root)
    same_step = [path for saved, _, path in saves if saved == step]
    generation = max((g for saved, g, _ in saves if saved == step), default=-1) + 1
    target = checkpoint_path(root, step, generation)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=root))
    try:
        save_file(_cpu(model), str(tmp / "model.safetensors"))
        for name, weights in (("best.safetensors", best), ("average.safetensors", average)):
            if weights is not None:
                save_file(_cpu(weights), str(tmp / name))
        torch.save(state, tmp / "state.pt")
        written = [name for name in FILES if (tmp / name).exists()]
        manifest = {"format": FORMAT, "step": step, "files": {name: _sha256(tmp / name) for name in written}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        for name in [*written, "manifest.json"]:
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        os.rename(tmp, target)  # a fresh name: nothing is replaced
        fsync_dir(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for superseded in same_step:  # the same step saved before (an epoch end on a periodic save's step)
        shutil.rmtree(superseded)
    steps = sorted({saved for saved, _, _ in _saves(root)})
    for saved, _, old in _saves(root):
        if saved in steps[:-keep]:
            shutil.rmtree(old)
    fsync_dir(root)
    return target


def load_checkpoint(path: Path, shapes: dict[str, torch.Size]) -> Checkpoint:
    """Verify and load one checkpoint directory for a model whose state has ``shapes``."""
    manifest_path = path / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        files, step = dict(manifest["files"]), int(manifest["step"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise CheckpointError(f"{manifest_path}: unreadable checkpoint manifest ({exc})") from exc
    if manifest.get("format") != FORMAT:
        found = manifest.get("format")
        raise CheckpointError(f"{manifest_path}: checkpoint format {found!r}; this atft reads {FORMAT}")
    if unknown := sorted(set(files) - set(FILES)):
        raise CheckpointError(
            f"{manifest_path}: lists {unknown[0]!r}, not a checkpoint file; allowed: {', '.join(FILES)}"
        )
    for name in ("model.safetensors", "state.pt"):
        if name not in files:
            raise CheckpointError(f"{path}: the manifest lists no {name}")
    for name, digest in files.items():
        if not (path / name).is_file():
            raise CheckpointError(f"{path / name}: missing (listed in the manifest)")
        if _sha256(path / name) != digest:
            raise CheckpointError(f"{path / name}: checksum mismatch (truncated or corrupted)")
    model = load_weights(path / "model.safetensors", shapes)
    best, average = (
        load_weights(path / name, shapes) if name in files else None
        for name in ("best.safetensors", "average.safetensors")
    )
    try:
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path / 'state.pt'}: cannot load the training state ({exc})") from exc
    return Checkpoint(path, step, model, best, average, state)


def latest_valid(
    root: Path, shapes: dict[str, torch.Size], check: Callable[[Checkpoint], None] | None = None
) -> Checkpoint | None:
    """The newest checkpoint under ``root`` that verifies (and passes ``check``); None when there is none at all.

    ``check`` raises :class:`CheckpointError` for a checkpoint that loads but cannot be used.

    Raises:
        CheckpointError: checkpoints exist but none verifies (each one's fault is listed).
    """
    skipped: list[str] = []
    for path in reversed(checkpoint_dirs(root)):
        try:
            found = load_checkpoint(path, shapes)
            if check is not None:
                check(found)
        except CheckpointError as exc:
            skipped.append(str(exc))
            continue
        found.skipped = skipped
        return found
    if skipped:
        raise CheckpointError(f"{root}: no usable checkpoint: " + "; ".join(skipped))
    return None


def load_weights(path: Path, shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """The tensors of one safetensors file, checked against the model's ``{name: shape}`` before any is used.

    Why the check: a file from another config or model would otherwise fail deep inside ``load_state_dict``, or
    worse, load into a model of the same names and other meaning; this names the first tensor that differs.
    Safetensors holds tensors only, so reading it runs no code (unlike a pickle).

    Raises:
        CheckpointError: the file is unreadable, or its tensors are not exactly ``shapes``.
    """
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: unreadable safetensors ({exc})") from exc
    if missing := sorted(set(shapes) - set(weights)):
        raise CheckpointError(f"{path}: from another model: no tensor {missing[0]} ({len(missing)} missing)")
    if extra := sorted(set(weights) - set(shapes)):
        raise CheckpointError(f"{path}: from another model: unexpected tensor {extra[0]} ({len(extra)} extra)")
    for name, shape in shapes.items():
        if weights[name].shape != shape:
            raise CheckpointError(
                f"{path}: from another model shape: {name} is {tuple(weights[name].shape)} in the checkpoint, "
                f"{tuple(shape)} in this config"
            )
    return weights


def _cpu(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in weights.items()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
