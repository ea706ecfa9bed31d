"""The trained model a forecast uses: a run directory's selected weights, or one checkpoint of a run.

Which weights: a run directory's ``model.safetensors`` is the model the run selected (the best epoch on its
validation days, the weight average when ``train.weight_average`` is on) -- the one a user wants. A
checkpoint directory (``RUN_DIR/checkpoints/step-N``, e.g. of a run still training or stopped early) holds
three sets; the forecast uses the one the run would have saved had it ended there: ``best.safetensors`` (the
best epoch so far), else ``average.safetensors`` (before the first evaluation, the average is what is
evaluated), else ``model.safetensors`` (the raw weights). A checkpoint is verified as for a resume: every
checksum of its manifest, every tensor shape, and its config against the run's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from atft.config import Config, load_config
from atft.errors import InputFileError
from atft.predict.inputs import RunInputs, read_run_inputs
from atft.runs.directory import MARKER, is_run_dir
from atft.train.checkpoint import checkpoint_dirs, checkpoints_root, load_checkpoint, load_weights
from atft.train.resume import check_config

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class TrainedRun:
    """A run's config and input record, and where its weights are (read, verified, by :meth:`weights`)."""

    run_dir: Path
    checkpoint: Path | None  # None: the run's selected model.safetensors
    cfg: Config
    inputs: RunInputs

    def weights(self, shapes: dict[str, torch.Size]) -> tuple[dict[str, torch.Tensor], Path]:
        """The weights (every name and shape checked against ``shapes``) and the file they came from.

        Raises:
            CheckpointError: a tensor is missing, extra or of another shape; a checkpoint's checksum fails or
                its config is not the run's.
        """
        if self.checkpoint is None:
            path = self.run_dir / MODEL_FILE
            return load_weights(path, shapes), path
        found = load_checkpoint(self.checkpoint, shapes)
        check_config(self.cfg, found)
        if found.best is not None:
            return found.best, self.checkpoint / "best.safetensors"
        if found.average is not None:
            return found.average, self.checkpoint / "average.safetensors"
        return found.model, self.checkpoint / MODEL_FILE


def open_trained(path: str | Path) -> TrainedRun:
    """The run directory or checkpoint directory ``path``, its files checked to exist before any work.

    Raises:
        InputFileError: ``path`` is neither, or lacks ``model.safetensors``, ``config.yaml`` or ``inputs.json``
            (each named; a run that stopped before its end is pointed to its newest checkpoint).
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such run directory")
    if not path.is_dir():
        raise InputFileError(f"{path}: a file; give the run directory atft train wrote (or one of its checkpoints)")
    if (path / MANIFEST).is_file():
        run_dir, checkpoint = path.parent.parent, path
        if not is_run_dir(run_dir):
            raise InputFileError(
                f"{path}: a checkpoint outside its run directory ({run_dir} has no {MARKER}); predicting needs "
                f"the run's {CONFIG_FILE} and inputs.json, two levels up"
            )
    else:
        run_dir, checkpoint = path, None
        if not (path / MODEL_FILE).is_file():
            raise InputFileError(f"{path / MODEL_FILE}: missing; {_why_no_model(path)}")
    config = run_dir / CONFIG_FILE
    if not config.is_file():
        raise InputFileError(f"{config}: missing; a run directory written by atft train holds it")
    cfg = load_config(config, environ={})  # the run's settings as written: no environment switch applies
    return TrainedRun(run_dir, checkpoint, cfg, read_run_inputs(run_dir))


def _why_no_model(path: Path) -> str:
    if not is_run_dir(path):
        return f"not a run directory ({MARKER} absent): give the directory atft train wrote"
    newest = checkpoint_dirs(checkpoints_root(path))
    if newest:
        return f"the run did not finish; to forecast with its newest checkpoint, give {newest[-1]}"
    return "the run did not finish and has no checkpoint"
