"""Run ``python -m atft.train ARGS`` and SIGKILL the process at one file-system step of its choosing.

Usage: ``python kill_driver.py ARGS`` with ``ATFT_KILL_LOG=FILE`` (one line per step: number, function,
path) and optionally ``ATFT_KILL_AT=N`` (SIGKILL just before the N-th step runs). The steps are the calls
every durable write of atft goes through -- ``os.fsync``, ``os.replace`` (atomic files), ``os.rename``
(checkpoint directories), ``shutil.rmtree`` (superseded and pruned checkpoints) -- so a kill "at step N"
stops the run exactly between two of the writes that make up a checkpoint or the final write-out. A rename
is logged as ``source -> target``.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable
from typing import Any

from atft.train.__main__ import main

STEPS: list[tuple[Any, str]] = [(os, "fsync"), (os, "replace"), (os, "rename"), (shutil, "rmtree")]


def _instrument(log_path: str, kill_at: int) -> None:
    count = 0
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 -- the process ends by SIGKILL or exit

    def wrap(owner: Any, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            nonlocal count
            count += 1
            log.write(f"{count}\t{name}\t{' -> '.join(_path(a) for a in args[:2])}\n")
            if count == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        return step

    for owner, name in STEPS:
        setattr(owner, name, wrap(owner, name, getattr(owner, name)))


def _path(target: Any) -> str:
    """The path a step acts on; for ``os.fsync(fd)``, the file the descriptor is open on."""
    if isinstance(target, int):
        return os.readlink(f"/proc/self/fd/{target}")
    return os.fspath(target)


if __name__ == "__main__":
    _instrument(os.environ["ATFT_KILL_LOG"], int(os.environ.get("ATFT_KILL_AT", "0")))
    sys.exit(main(sys.argv[1:]))
