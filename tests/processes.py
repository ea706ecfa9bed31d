"""The project's programs run as a user or the training container runs them: a child process of this
interpreter (``python -m atft_cli``, ``python -m atft.train``) that sees the checkout's sources."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
CLI = ("-m", "atft_cli")
TRAIN = ("-m", "atft.train")

Env = Mapping[str, str | None]
"""Variables set on top of :func:`child_env`'s; ``None`` unsets one."""


def child_env(env: Env | None = None) -> dict[str, str]:
    """This process's environment as a child should see it, then ``env`` on top.

    One OpenMP thread: the child shares a few cores with pytest and with other tests. The checkout's sources
    first on PYTHONPATH: the child runs the code under test whatever else is installed. COLUMNS=200: no table
    cell is cut to fit the terminal pytest happens to run in. No ATFT_DEBUG: errors are the one-line messages
    a user sees, which is what the tests assert.
    """
    full = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT / "cli"), full.get("PYTHONPATH")]))
    full.pop("ATFT_DEBUG", None)
    for name, value in (env or {}).items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    return full


def run_python(
    *args: str | Path, env: Env | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` to its end, stdout and stderr captured as text; a hang fails the test after ``timeout`` s."""
    cmd = [sys.executable, *map(str, args)]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=child_env(env), cwd=cwd, timeout=timeout, check=False
    )


def run_cli(
    *args: str | Path, env: Env | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``atft ARGS`` as a user runs it: ``main()`` turns errors into exit codes and one-line messages."""
    return run_python(*CLI, *args, env=env, cwd=cwd, timeout=timeout)


def run_train(*args: str | Path, env: Env | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m atft.train ARGS``, the training container's command, to its end."""
    return run_python(*TRAIN, *args, env=env, timeout=timeout)


def start_train(
    *args: str | Path, stdout: int | IO[Any] = subprocess.PIPE, stderr: int | IO[Any] = subprocess.PIPE
) -> subprocess.Popen[str]:
    """The training container's command started and left running: the test signals it or watches its files."""
    cmd = [sys.executable, *TRAIN, *map(str, args)]
    return subprocess.Popen(cmd, env=child_env(), stdout=stdout, stderr=stderr, text=True)
