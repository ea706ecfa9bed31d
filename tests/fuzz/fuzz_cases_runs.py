"""Fuzz cases of the run-directory side: ``--resume``, ``--overwrite``, the exporter and the container.

These faults need a real run to plant them in: :func:`trained` trains the base config once per corpus (a few
seconds) and each case copies what it spoils into its own directory, so the trained run itself is never
touched. ``container`` cases run ``python -m atft.train`` -- what the training image runs -- as a real
process (:data:`REAL_PROCESS_FAMILIES`); the others run ``atft`` in-process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from fuzz_cases import CASES
from fuzz_corpus import BASE_CONFIG, Corpus, Invocation, with_key, write_bytes, write_yaml

from atft.config import load_config
from atft.train.checkpoint import checkpoint_dirs
from atft.train.job import run_training

REAL_PROCESS_FAMILIES = ("container",)
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000


TRAINED = with_key(
    with_key(with_key(BASE_CONFIG, "train.checkpoint_every", 2), "train.keep_checkpoints", 2), "train.epochs", 2
)


def trained_config(c: Corpus) -> Path:
    """The config of :func:`trained`: the base config, checkpointing every 2 steps, 2 epochs."""
    path = c.root / "base" / "trained.yaml"
    if not path.is_file():
        write_yaml(path, TRAINED)
    return path


def trained(c: Corpus) -> Path:
    """A run of :func:`trained_config` on the base panel, trained once per corpus (cached)."""
    run = c.root / "base" / "trained"
    if not (run / "report.json").is_file():
        run_training(load_config(trained_config(c)), run, c.panel, progress=False)
    return run


def _copy_trained(c: Corpus, d: Path) -> Path:
    run = d / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(trained(c), run)
    return run


def _train_argv(c: Corpus, out: Path, *extra: str) -> list[str]:
    argv = ["train", "--config", str(trained_config(c)), "--data", str(c.panel), "--out", str(out)]
    return [*argv, "--no-progress", *extra]


def _reseal(checkpoint: Path) -> Path:
    """Rewrite a checkpoint's manifest checksums after its files were changed: the manifest verifies."""
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["files"] = {
        name: hashlib.sha256((checkpoint / name).read_bytes()).hexdigest() for name in manifest["files"]
    }
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))
    return checkpoint


def _edit_state(checkpoint: Path, edit: Callable[[dict], object]) -> Path:
    state = torch.load(checkpoint / "state.pt", weights_only=True)
    edit(state)
    torch.save(state, checkpoint / "state.pt")
    return _reseal(checkpoint)


def _user_folder(d: Path, marker: bytes | None = None) -> Path:
    folder = d / "mine"
    (folder / "notes").mkdir(parents=True, exist_ok=True)
    (folder / "data.csv").write_text("a,b\n1,2\n")
    (folder / "notes" / "todo.txt").write_text("keep me\n")
    if marker is not None:
        (folder / "run.json").write_bytes(marker)
    return folder


# --- resume: `atft train --resume auto` / `--overwrite` / `--resume PATH` ---------------------------------


OutMaker = Callable[[Corpus, Path], tuple[Path, Path | str]]


def resume_case(name: str, make_out: OutMaker, flags: tuple[str, ...], *words: str) -> None:
    """``make_out(corpus, dir)`` -> (the --out to give, what the error must name); ``flags`` the resume flags."""

    def make(c: Corpus) -> Invocation:
        out, named = make_out(c, c.dir("resume", name))
        return Invocation(_train_argv(c, out, *flags), words, names=named)

    CASES[f"resume_{name}"] = ("resume", make)


def _foreign(marker: bytes | None) -> OutMaker:
    def make_out(c: Corpus, d: Path) -> tuple[Path, Path]:
        folder = _user_folder(d, marker)
        return folder, folder

    return make_out


NOT_OURS = ("not an atft run directory", "data.csv")
for case, flags, marker in [
    ("auto_on_a_users_folder", ("--resume", "auto"), None),
    ("overwrite_a_users_folder", ("--overwrite",), None),
    ("plain_into_a_users_folder", (), None),
    ("auto_overwrite_a_users_folder", ("--resume", "auto", "--overwrite"), None),
    ("auto_other_tools_marker", ("--resume", "auto"), b'{"tool": "other"}'),
    ("overwrite_marker_not_json", ("--overwrite",), b"\xff\xfe not json"),
    ("overwrite_marker_nested_deep", ("--overwrite",), DEEP_JSON),
    ("auto_marker_is_a_list", ("--resume", "auto"), b'["atft"]'),
]:
    resume_case(case, _foreign(marker), flags, *NOT_OURS)


def _symlink_to_folder(c: Corpus, d: Path) -> tuple[Path, Path]:
    folder = _user_folder(d)
    link = d / "link"
    if not link.is_symlink():
        link.symlink_to(folder)
    return link, folder.resolve()


resume_case("overwrite_through_a_symlink", _symlink_to_folder, ("--overwrite",), *NOT_OURS)


def _symlink_loop(c: Corpus, d: Path) -> tuple[Path, Path]:
    loop = d / "loop"
    if not loop.is_symlink():
        loop.symlink_to(loop)
    return loop / "run", loop / "run"


resume_case("out_through_a_symlink_loop", _symlink_loop, ("--resume", "auto"), "cannot be a run directory")


def _spoiled_run(spoil: Callable[[Path], Path | str]) -> OutMaker:
    """A copy of the trained run with ``spoil(run)`` applied (it returns what the error must name)."""

    def make_out(c: Corpus, d: Path) -> tuple[Path, Path | str]:
        run = _copy_trained(c, d)
        return run, spoil(run)

    return make_out


def _every_checkpoint(damage: Callable[[Path], object]) -> Callable[[Path], Path]:
    def spoil(run: Path) -> Path:
        for checkpoint in checkpoint_dirs(run / "checkpoints"):
            damage(checkpoint)
        return run / "checkpoints"

    return spoil


def _no_loop(state: dict) -> None:
    del state["loop"]


def _epoch_is_text(state: dict) -> None:
    state["loop"]["epoch"] = "two"


def _no_param_groups(state: dict) -> None:
    state["optimizer"]["param_groups"] = []


def _health_is_a_list(state: dict) -> None:
    state["health"] = [1, 2, 3]


def _rng_is_a_number(state: dict) -> None:
    state["rng"]["torch"] = torch.zeros(3)


def _no_events_bytes(state: dict) -> None:
    del state["events_bytes"]


def _truncated_weights(checkpoint: Path) -> None:
    os.truncate(checkpoint / "model.safetensors", 64)


USABLE = ("no usable checkpoint",)
for case, edit, word in [
    ("auto_state_without_loop", _no_loop, "KeyError: 'loop'"),
    ("auto_state_epoch_is_text", _epoch_is_text, "cannot restore"),
    ("auto_state_without_param_groups", _no_param_groups, "cannot restore"),
    ("auto_state_health_is_a_list", _health_is_a_list, "cannot restore"),
    ("auto_state_rng_is_floats", _rng_is_a_number, "cannot restore"),
    ("auto_state_without_events_bytes", _no_events_bytes, "events_bytes"),
]:
    spoil = _every_checkpoint(lambda p, e=edit: _edit_state(p, e))
    resume_case(case, _spoiled_run(spoil), ("--resume", "auto"), *USABLE, word)

resume_case(
    "auto_every_checkpoint_truncated",
    _spoiled_run(_every_checkpoint(_truncated_weights)),
    ("--resume", "auto"),
    *USABLE,
    "checksum mismatch",
)


def _events_cut_short(run: Path) -> Path:
    os.truncate(run / "events.jsonl", 10)
    return run / "events.jsonl"


resume_case(
    "auto_events_shorter_than_the_checkpoint",
    _spoiled_run(_events_cut_short),
    ("--resume", "auto"),
    "shorter than",
    "does not belong to this checkpoint",
)


def _newest(run: Path) -> Path:
    return checkpoint_dirs(run / "checkpoints")[-1]


resume_case(
    "auto_with_another_config",
    _spoiled_run(_newest),
    ("--resume", "auto", "--set", "train.lr=0.5"),
    "config changed",
    "train.lr: 0.001 in the checkpoint, 0.5 now",
)


# --- checkpoints named by path: `atft train --resume CKPT --out NEW` -----------------------------------------


def named_checkpoint_case(name: str, spoil: Callable[[Path], object], *words: str) -> None:
    """A copy of the trained run's newest checkpoint, spoiled, continued into a new run directory."""

    def make(c: Corpus) -> Invocation:
        d = c.dir("checkpoints", name)
        checkpoint = d / "checkpoint"
        shutil.rmtree(checkpoint, ignore_errors=True)
        shutil.copytree(_newest(trained(c)), checkpoint)
        spoil(checkpoint)
        return Invocation(_train_argv(c, d / "run", "--resume", str(checkpoint)), words, names=checkpoint)

    CASES[f"checkpoint_{name}"] = ("checkpoints", make)


def _manifest(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def spoil(checkpoint: Path) -> None:
        manifest = json.loads((checkpoint / "manifest.json").read_text())
        edit(manifest)
        (checkpoint / "manifest.json").write_text(json.dumps(manifest))

    return spoil


def _pickled_state(checkpoint: Path) -> None:
    torch.save({"config": "x", "callable": Path}, checkpoint / "state.pt")  # a class: only full unpickling loads it
    _reseal(checkpoint)


named_checkpoint_case("state_without_loop", lambda p: _edit_state(p, _no_loop), "cannot restore", "'loop'")
named_checkpoint_case("state_epoch_is_text", lambda p: _edit_state(p, _epoch_is_text), "cannot restore")
named_checkpoint_case("state_without_param_groups", lambda p: _edit_state(p, _no_param_groups), "cannot restore")
named_checkpoint_case("state_health_is_a_list", lambda p: _edit_state(p, _health_is_a_list), "cannot restore")
named_checkpoint_case("state_pickles_a_class", _pickled_state, "cannot load the training state")
named_checkpoint_case("state_missing", lambda p: (p / "state.pt").unlink(), "state.pt", "missing")
named_checkpoint_case("manifest_format_2", _manifest(lambda m: m.update(format=2)), "checkpoint format 2")
named_checkpoint_case(
    "manifest_lists_another_file",
    _manifest(lambda m: m["files"].update({"../../etc/passwd": "0" * 64})),
    "'../../etc/passwd'",
    "not a checkpoint file",
)
named_checkpoint_case("manifest_without_state", _manifest(lambda m: m["files"].pop("state.pt")), "no state.pt")
named_checkpoint_case(
    "manifest_nested_deep", lambda p: write_bytes(p / "manifest.json", DEEP_JSON), "unreadable checkpoint manifest"
)
named_checkpoint_case(
    "manifest_step_is_text", _manifest(lambda m: m.update(step="ten")), "unreadable checkpoint manifest"
)
named_checkpoint_case("weights_flipped_byte", lambda p: _flip(p / "model.safetensors"), "checksum mismatch")
named_checkpoint_case("best_weights_missing", lambda p: (p / "best.safetensors").unlink(), "best.safetensors")


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# --- exporter: `atft exporter` setup faults (hostile lines are skipped, not refused: tests/exporter) -----


def exporter_case(name: str, events: Callable[[Path], Path], *words: str) -> None:
    def make(c: Corpus) -> Invocation:
        path = events(c.dir("exporter", name))
        argv = ["exporter", "--events", str(path), "--pushgateway", "http://127.0.0.1:9", "--final-timeout", "0"]
        return Invocation(argv, words, names=path)

    CASES[f"exporter_{name}"] = ("exporter", make)


exporter_case("events_is_a_directory", lambda d: d, "cannot read the event file")


# --- container: `python -m atft.train`, as a real process ------------------------------------------------


def container_case(name: str, argv: Callable[[Corpus, Path], tuple[list[str], Path | str]], *words: str) -> None:
    """``argv(corpus, dir)`` -> (the arguments of ``python -m atft.train``, what the error must name)."""

    def make(c: Corpus) -> Invocation:
        args, named = argv(c, c.dir("container", name))
        return Invocation(args, words, names=named, module="atft.train")

    CASES[f"container_{name}"] = ("container", make)


def _job(config: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["--config", str(config), "--data", str(data), "--out", str(out), *extra]


def _with_config(tree: object) -> Callable[[Corpus, Path], tuple[list[str], Path]]:
    def argv(c: Corpus, d: Path) -> tuple[list[str], Path]:
        path = write_yaml(d / "config.yaml", tree)
        return _job(path, c.panel, d / "run"), path

    return argv


def _nested_config(c: Corpus, d: Path) -> tuple[list[str], Path]:
    path = write_bytes(d / "config.yaml", b"data: " + b"[" * 50_000 + b"]" * 50_000)
    return _job(path, c.panel, d / "run"), path


def _missing_panel(c: Corpus, d: Path) -> tuple[list[str], Path]:
    return _job(c.config, d / "absent.parquet", d / "run"), d / "absent.parquet"


def _onto_a_users_folder(c: Corpus, d: Path) -> tuple[list[str], Path]:
    folder = _user_folder(d)
    return _job(trained_config(c), c.panel, folder, "--resume", "auto"), folder


def _unrestorable(c: Corpus, d: Path) -> tuple[list[str], Path]:
    run = _copy_trained(c, d)
    _every_checkpoint(lambda p: _edit_state(p, _no_loop))(run)
    return _job(trained_config(c), c.panel, run, "--resume", "auto"), run / "checkpoints"


container_case("without_out", lambda c, d: (["--config", str(c.config)], "--out"), "required")
container_case(
    "unknown_option", lambda c, d: ([*_job(c.config, c.panel, d / "r"), "--epochs", "3"], "--epochs"), "unrecognized"
)
container_case("unknown_key", _with_config(with_key(BASE_CONFIG, "train.epoch", 3)), "train.epoch: unknown key")
container_case(
    "bad_set", lambda c, d: (_job(c.config, c.panel, d / "r", "--set", "train.lr"), "--set 'train.lr'"), "KEY=VALUE"
)
container_case("missing_panel", _missing_panel, "no such panel file")
container_case("nested_config", _nested_config, "nested too deeply")
container_case("resume_auto_on_a_users_folder", _onto_a_users_folder, *NOT_OURS)
container_case("resume_auto_unrestorable_state", _unrestorable, *USABLE, "cannot restore")
